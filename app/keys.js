// udasa-app in the browser: accessible names for radio groups, and keyboard shortcuts for
// the Rate tab (see KEYS_HELP in app/ui_rate.py). Loaded once per page through launch(head=).
(() => {
  const SCALES = ["rate-harmless", "rate-helpful", "rate-overall"];
  const PREFERENCE = {a: "A", b: "B", t: "tie", x: "both bad"};
  let active = 0;
  let serial = 0;

  const byId = (id) => document.getElementById(id);
  const shown = (el) => !!el && el.offsetParent !== null;

  // A Gradio radio group is a <fieldset> whose label is a <span data-testid="block-info">
  // and whose radios each carry a different name: give the group its label as accessible
  // name and one name to its radios, so that a screen reader announces "Harmless ...,
  // radio 7 of 10" and the arrow keys move within the group.
  function nameControls() {
    for (const set of document.querySelectorAll("fieldset")) {
      const info = set.querySelector(":scope > [data-testid='block-info']");
      const radios = set.querySelectorAll("input[type=radio]");
      if (!info) continue;
      if (!info.id) info.id = `udasa-label-${++serial}`;
      if (set.getAttribute("aria-labelledby") !== info.id) set.setAttribute("aria-labelledby", info.id);
      if (radios.length && set.getAttribute("role") !== "radiogroup") set.setAttribute("role", "radiogroup");
      const group = `udasa-group-${set.id || info.id}`;
      for (const r of radios) if (r.name !== group) r.name = group;
    }
    // icon-only buttons and links, and images, named after their purpose and component
    for (const el of document.querySelectorAll("button:not([aria-label]), a:not([aria-label])")) {
      if (el.textContent.trim() || el.getAttribute("title")) continue;
      const inner = el.querySelector("[aria-label]")?.getAttribute("aria-label")
        || el.querySelector("svg title")?.textContent;
      const what = blockLabel(el);
      const name = inner || (el.matches("a[download], a.download-link") ? `Download ${what}`
        : el.querySelector("img") ? `Open image: ${what}` : what);
      if (name.trim()) el.setAttribute("aria-label", name.trim());
    }
    for (const input of document.querySelectorAll("input:not([type=hidden]), textarea")) {
      if (input.labels?.length || input.getAttribute("aria-label")
        || input.getAttribute("aria-labelledby")) continue;
      const what = blockLabel(input);
      if (what) input.setAttribute("aria-label", what);
    }
    for (const img of document.querySelectorAll("img:not([alt]), img[alt='']")) {
      img.setAttribute("alt", blockLabel(img) || "image");
    }
  }

  function blockLabel(el) {  // the label of the Gradio component holding `el`
    const block = el.closest(".block");
    return (block?.querySelector("[data-testid='block-label']")?.textContent
      || block?.querySelector("[data-testid='block-info']")?.textContent || "").trim();
  }

  function mark() {
    SCALES.forEach((id, i) => byId(id)?.classList.toggle("udasa-active", i === active));
  }

  function pick(id, value) {
    const input = byId(id)?.querySelector(`input[type=radio][value="${CSS.escape(value)}"]`);
    if (input && !input.disabled) input.click();
    return !!input;
  }

  function typing(t) {
    if (!t) return false;
    if (t.isContentEditable || t.tagName === "TEXTAREA") return true;
    return t.tagName === "INPUT" && !["radio", "checkbox", "button"].includes(t.type);
  }

  function press(id) {
    const b = byId(id);
    if (b && !b.disabled) b.click();
  }

  function onKey(e) {
    if (!shown(byId("rate-submit")) || e.altKey || e.metaKey) return;  // not on the Rate tab
    const key = e.key;
    if (key === "Enter" && (e.ctrlKey || (!typing(e.target) && e.target.tagName !== "BUTTON"))) {
      e.preventDefault();
      press("rate-submit");
      return;
    }
    if (typing(e.target) || e.ctrlKey) return;
    const scores = shown(byId("rate-harmless"));
    const lower = key.toLowerCase();
    if (scores && /^[0-9]$/.test(key)) {
      pick(SCALES[active], key === "0" ? "10" : key);
      active = (active + 1) % SCALES.length;
    } else if (!scores && lower in PREFERENCE) {
      pick("rate-preference", PREFERENCE[lower]);
    } else if (lower === "s") {
      press("rate-skip");
    } else if (key === "Backspace") {
      press("rate-back");
    } else if (lower === "f") {
      byId("rate-flag")?.querySelector("input[type=checkbox]")?.click();
    } else if (lower === "c") {
      byId("rate-comment")?.querySelector("textarea, input")?.focus();
    } else {
      return;
    }
    e.preventDefault();
    mark();
  }

  function onFocus(e) {  // clicking or tabbing into a scale makes it the active one
    const i = SCALES.findIndex((id) => byId(id)?.contains(e.target));
    if (i >= 0) { active = i; mark(); }
    if (["rate-submit", "rate-skip", "rate-back"].some((id) => byId(id)?.contains(e.target))) {
      active = 0;
      setTimeout(mark, 0);
    }
  }

  document.addEventListener("click", (e) => {  // a person chose a tab: keep it (ui.LAND_JS)
    if (e.isTrusted && e.target.closest?.("button[role=tab]")) window.udasaTabChosen = true;
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("focusin", onFocus);
  document.addEventListener("click", onFocus);
  const start = () => {
    window.udasaStarted = true;
    nameControls();
    mark();
    let queued = false;
    new MutationObserver(() => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; nameControls(); mark(); });
    }).observe(document.body, {childList: true, subtree: true});
  };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
