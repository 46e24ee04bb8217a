"""`condgen paint`: a local GauGAN. Paint a label map in the browser, get the photo from any run.

`PaintModel` (model.py) loads a run and does the work (label maps in, images out, through the same code
as `experiments/synthesize.py`); `create_app` (app.py) is the ASGI app with its JSON/PNG API and the static
page (static/); `cli.main` is `condgen paint --run RUN`.
Needs the `paint` extra: `pip install 'condgen[paint]'`.
"""

from condgen.paint.model import InputError, PaintModel

__all__ = ["InputError", "PaintModel"]
