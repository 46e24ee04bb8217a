// condgen paint, the style panel of region-style (SEAN) models: upload photos, read their regions with the
// painted label map (or the photo's own), choose per class which photo gives its style, mix two photos for
// one class with the slider. Talks to /region_style and /region_synthesize; uses paint.js's api, idsToPng,
// showResults and say.
"use strict";

const regions = {
  enabled: false, photos: [], default: null, take: {}, labelsFile: null, lastRequest: null, lastResponse: null,
};
window.paintRegions = regions;  // for the browser test and the curious

function toDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function regionAddPhoto(file) {
  try {
    const labels = await toDataUrl(regions.labelsFile || await idsToPng());
    const photo = await toDataUrl(file);
    const r = await api("region_style", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ photo, labels }),
    });
    const json = await r.json();
    json.name = file.name;
    regions.photos.push(json);
    if (!regions.default) regions.default = json.style;
    regions.labelsFile = null;
    renderRegionPanel();
    say(`${file.name}: ${json.present.length} regions read`);
  } catch (err) {
    say(`region photo ${file.name}: ${err.message}`, true);
  }
}

function classOption(id) {
  const o = document.createElement("option");
  o.value = id;
  o.textContent = state.info.classes[id] ? state.info.classes[id].name : `class ${id}`;
  return o;
}

function renderRegionPanel() {
  const strip = $("region-photos");
  strip.textContent = "";
  regions.photos.forEach((p, k) => {
    const img = document.createElement("img");
    img.src = p.preview;
    img.alt = img.title = `${k + 1}: ${p.name}${p.style === regions.default ? " (default style)" : ""}`;
    img.className = p.style === regions.default ? "selected" : "";
    img.dataset.style = p.style;
    img.addEventListener("click", () => { regions.default = p.style; renderRegionPanel(); });
    strip.append(img);
  });
  const present = [...new Set(regions.photos.flatMap((p) => p.present))].sort((a, b) => a - b);
  const table = $("region-classes");
  table.textContent = "";
  for (const id of present) {
    const row = table.insertRow();
    row.dataset.class = id;
    row.insertCell().textContent = state.info.classes[id] ? state.info.classes[id].name : `class ${id}`;
    regions.photos.forEach((p, k) => {
      const cell = row.insertCell();
      if (!p.present.includes(id)) return;
      const label = document.createElement("label");
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = `region-${id}`;
      radio.value = p.style;
      radio.checked = (regions.take[id] || regions.default) === p.style;
      radio.addEventListener("change", () => {
        if (p.style === regions.default) delete regions.take[id]; else regions.take[id] = p.style;
      });
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = `rgb(${p.swatches[id].join(",")})`;
      swatch.title = `photo ${k + 1}'s ${row.cells[0].textContent}`;
      label.append(radio, swatch);
      cell.append(label);
    });
  }
  const mixClass = $("region-mix-class");
  const mixWith = $("region-mix-with");
  const keepClass = mixClass.value;
  mixClass.textContent = "";
  mixClass.append(...present.map(classOption));
  if (present.includes(+keepClass)) mixClass.value = keepClass;
  mixWith.textContent = "";
  regions.photos.forEach((p, k) => {
    const o = document.createElement("option");
    o.value = p.style;
    o.textContent = `photo ${k + 1}`;
    mixWith.append(o);
  });
  $("region-generate").disabled = regions.photos.length === 0;
}

async function regionGenerate() {
  const seed = Math.max(0, Math.floor(+$("seed").value || 0));
  const alpha = +$("region-mix").value;
  const body = {
    labels: await toDataUrl(await idsToPng()),
    default: regions.default,
    regions: { ...regions.take },
    mix: alpha > 0 && $("region-mix-class").value !== ""
      ? { class: +$("region-mix-class").value, with: $("region-mix-with").value, alpha } : null,
  };
  const start = performance.now();
  try {
    const r = await api(`region_synthesize?seed=${seed}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const json = await r.json();
    regions.lastRequest = body;
    regions.lastResponse = json;
    showResults(json, performance.now() - start);
    say("");
  } catch (err) {
    say(`could not generate with region styles: ${err.message}`, true);
  }
}

async function startRegions() {
  let info;
  try {
    info = await (await api("region_style")).json();
  } catch (err) {
    return;  // an older server: no panel
  }
  regions.enabled = info.enabled;
  $("region-panel").hidden = !info.enabled;
  $("region-photo").addEventListener("change", (e) => { if (e.target.files[0]) regionAddPhoto(e.target.files[0]); });
  $("region-labels").addEventListener("change", (e) => { regions.labelsFile = e.target.files[0] || null; });
  $("region-mix").addEventListener("input", () => { $("region-mix-out").textContent = $("region-mix").value; });
  $("region-mix").addEventListener("change", () => { if (regions.photos.length) regionGenerate(); });
  $("region-generate").addEventListener("click", regionGenerate);
}

startRegions();
