"""The status pages' Jinja templates (autoescaped by Flask's render_template_string)."""

from __future__ import annotations

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }} - extender {{ version }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.ok { color: #0a6b0a; font-weight: bold; } .bad { color: #b00020; font-weight: bold; }
.pass { background: #eef8ee; } .reject { background: #fdecee; } .na { color: #888; }
code, .mono { font-family: ui-monospace, monospace; font-size: .95em; }
form { margin: .5em 0; } input[type=text] { width: 22em; }
</style></head><body>
"""

INDEX = _HEAD + """<h1>extender {{ version }}: status</h1>
<p>Readiness: {% if ready %}<span class="ok">ready</span>{% else %}<span class="bad">not ready</span>{% endif %}
({{ readiness }})</p>

<h2>Policy</h2>
<p>Source <code>{{ policy.source }}</code>, digest <code>{{ policy.digest }}</code>,
bind {{ "enabled" if policy.bind else "disabled" }}{% if reload %}, running since {{ reload.loadedAt }}{% endif %}.</p>
{% if reload and reload.lastReload %}{% set last = reload.lastReload %}
<p id="reload">Last reload ({{ last.trigger }}, {{ last.time }}): {% if last.ok %}<span class="ok">applied</span>
digest <code>{{ last.digest }}</code>{% else %}<span class="bad">refused</span>, the policy above keeps running:
{{ last.error }}{% if last.problems %}<ul>{% for problem in last.problems %}<li>{{ problem }}</li>{% endfor %}</ul>{% endif %}{% endif %}
({{ reload.reloads.succeeded }} applied, {{ reload.reloads.failed }} refused in this worker).</p>{% endif %}
<table id="policy">
<tr><th>kind</th><th>rule</th><th>type</th><th>mode</th><th>weight</th></tr>
{% for rule in policy.rules %}<tr><td>{{ rule.kind }}</td><td>{{ rule.name }}</td><td>{{ rule.type }}</td>
<td>{{ rule.mode }}</td><td>{{ rule.weight }}</td></tr>{% endfor %}
</table>

<h2>Caches and sources</h2>
{% if not caches and not sources %}<p>No caches and no metric sources.</p>{% endif %}
{% if caches %}<table id="caches"><tr><th>cache</th><th>state</th></tr>
{% for name, state in caches.items() %}<tr><td>{{ name }}</td><td class="mono">{{ state | tojson }}</td></tr>{% endfor %}
</table>{% endif %}
{% if sources %}<table id="sources"><tr><th>source</th><th>state</th></tr>
{% for name, state in sources.items() %}<tr><td>{{ name }}</td><td class="mono">{{ state | tojson }}</td></tr>{% endfor %}
</table>{% endif %}
{% if events is not none %}<p id="events">Events: {{ events.posted }} posted, {{ events.limited }} rate-limited,
{{ events.dropped }} dropped (queue full), {{ events.failed }} failed.</p>{% endif %}

<h2>Recent decisions</h2>
<form method="get" action="">
<label>Pod (namespace/name contains): <input type="text" name="pod" value="{{ query }}"></label>
<input type="submit" value="Search">{% if query %} <a href="?">all</a>{% endif %}
</form>
<p>{{ rows | length }} shown, newest first (each worker keeps its last {{ capacity }}).</p>
<table id="decisions">
<tr><th>time (UTC)</th><th>verb</th><th>pod</th><th>mode</th><th>nodes</th><th>outcome</th><th>took</th><th>summary</th></tr>
{% for row in rows %}{% set r = row.record %}<tr class="decision">
<td class="mono"><a href="{{ url_for('status.detail', entry_id=row.id) }}">{{ r.time }}</a></td>
<td>{{ r.verb }}</td><td>{{ r.pod.namespace }}/{{ r.pod.name }}</td><td>{{ r.mode }}</td>
<td>{{ r.nodes }}</td><td>{{ r.outcome }}</td><td>{{ r.tookMs }} ms</td><td>{{ row.summary }}</td></tr>
{% else %}<tr><td colspan="8">No decision recorded{% if query %} for a pod matching "{{ query }}"{% endif %}.</td></tr>
{% endfor %}
</table>
</body></html>
"""

DETAIL = _HEAD + """<p><a href="{{ url_for('status.index') }}">&larr; status</a></p>
<h1>{{ record.verb }} of pod {{ record.pod.namespace }}/{{ record.pod.name }}</h1>
<p id="summary">{{ summary }}</p>
<table id="record">{% for name, value in fields %}<tr><th>{{ name }}</th><td class="mono">{{ value }}</td></tr>{% endfor %}</table>

{% if table %}
<h2>Per node and rule</h2>
<table id="table">
<tr><th>node</th>{% for rule in table.rules %}<th>{{ rule }}</th>{% endfor %}<th>score</th><th>answer</th></tr>
{% for row in table.rows %}<tr>
<td>{{ row.node }}</td>
{% for rule in table.rules %}{% set verdict = (row.verdicts or {}).get(rule) %}
<td class="{{ 'pass' if verdict == 'pass' else ('na' if verdict in (none, 'n/a') else 'reject') }}">
{% if verdict is not none %}{{ verdict }}{% endif %}
{% if rule in (row.raw or {}) %}<br>raw {{ row.raw[rule] }}{% endif %}
{% if rule in (row.normalised or {}) %}<br>normalised {{ row.normalised[rule] }}{% endif %}</td>
{% endfor %}
<td>{{ row.score if row.score is not none else "" }}</td><td>{{ row.answer }}</td></tr>{% endfor %}
</table>
{% if table.truncated %}<p>{{ table.truncated }} more node(s) not shown.</p>{% endif %}
{% endif %}

{% if record.rejected %}
<h2>Rejected</h2>
<table id="rejected"><tr><th>rule</th><th>reason</th><th>nodes</th><th>resolvable</th><th>examples</th></tr>
{% for r in record.rejected %}<tr class="reject"><td>{{ r.rule or "-" }}</td><td>{{ r.reason }}</td><td>{{ r.count }}</td>
<td>{{ "yes" if r.resolvable else "no" }}</td><td>{{ (r.nodes or []) | join(", ") }}</td></tr>{% endfor %}
</table>
{% endif %}

{% if record.best %}
<h2>Best node</h2>
<p>{{ record.best.node }}: score {{ record.best.score }}</p>
<table id="best"><tr><th>priority</th><th>normalised score (0..10)</th></tr>
{% for rule, score in (record.best.rules or {}).items() %}<tr><td>{{ rule }}</td><td>{{ score }}</td></tr>{% endfor %}
</table>
{% endif %}

{% if record.shadow %}
<h2>Shadow rules</h2>
{% if record.verb == "prioritize" %}
<table id="shadow"><tr><th>rule</th><th>would change the score of</th><th>would pick</th></tr>
{% for s in record.shadow %}<tr><td>{{ s.rule }}</td><td>{{ s.wouldChange }} node(s)</td><td>{{ s.wouldBest }}</td></tr>{% endfor %}</table>
{% else %}
<table id="shadow"><tr><th>rule</th><th>would reject</th></tr>
{% for s in record.shadow %}<tr><td>{{ s.rule }}</td><td>{{ s.wouldReject }}</td></tr>{% endfor %}</table>
{% endif %}
{% endif %}

{% if record.failures %}
<h2>Rule errors</h2>
<table id="failures"><tr><th>rule</th><th>count</th><th>message</th><th>action</th></tr>
{% for f in record.failures %}<tr><td>{{ f.rule }}</td><td>{{ f.count }}</td><td>{{ f.message }}</td><td>{{ f.action }}</td></tr>{% endfor %}
</table>
{% endif %}
</body></html>
"""
