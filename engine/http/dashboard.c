/*
 * The page behind GET /: one static document, no external assets (the
 * dashboard must work on a machine without internet access). It polls
 * /v1/status and /metrics once a second and shows them as they come; a
 * failed poll is shown in place rather than hiding the last good answer.
 */
#include "http/http_impl.h"

const char sl__http_dashboard[] =
    "<!doctype html>\n"
    "<html><head><meta charset=\"utf-8\"><title>sluice</title>\n"
    "<style>\n"
    "body{font:14px system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}\n"
    "h1{font-size:1.3em}h2{font-size:1.05em;margin:1.2em 0 .4em}\n"
    "pre{background:#fff;border:1px solid #ddd;padding:.7em;overflow:auto;max-height:40em}\n"
    "#state{color:#666}.err{color:#b00}\n"
    "</style></head><body>\n"
    "<h1>sluice <span id=\"state\">connecting</span></h1>\n"
    "<h2>status <small>(/v1/status)</small></h2><pre id=\"status\"></pre>\n"
    "<h2>metrics <small>(/metrics)</small></h2><pre id=\"metrics\"></pre>\n"
    "<script>\n"
    "'use strict';\n"
    "const $ = (id) => document.getElementById(id);\n"
    "async function get(url) {\n"
    "  const r = await fetch(url, {cache: 'no-store'});\n"
    "  const t = await r.text();\n"
    "  if (!r.ok) throw new Error(url + ': HTTP ' + r.status + ' ' + t);\n"
    "  return t;\n"
    "}\n"
    "async function tick() {\n"
    "  try {\n"
    "    const [s, m] = await Promise.all([get('/v1/status'), get('/metrics')]);\n"
    "    let shown = s;\n"
    "    try { shown = JSON.stringify(JSON.parse(s), null, 2); } catch (e) {}\n"
    "    $('status').textContent = shown;\n"
    "    $('metrics').textContent = m.split('\\n').filter((l) => !l.startsWith('#')).join('\\n');\n"
    "    $('state').textContent = 'updated ' + new Date().toLocaleTimeString();\n"
    "    $('state').className = '';\n"
    "  } catch (e) {\n"
    "    $('state').textContent = String(e.message || e);\n"
    "    $('state').className = 'err';\n"
    "  }\n"
    "  setTimeout(tick, 1000);\n"
    "}\n"
    "tick();\n"
    "</script></body></html>\n";

const size_t sl__http_dashboard_len = sizeof(sl__http_dashboard) - 1;
