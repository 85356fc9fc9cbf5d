//! The two pages a person sees: `GET /`, a form to try a prompt, and
//! `GET /reports/{id}`, a run's report. Rendered by minijinja with HTML auto-escaping,
//! as the batch contact sheet is: prompts, web titles and model feedback are text, never
//! markup. Neither page runs a script.

use minijinja::{AutoEscape, Environment, context};

use crate::Report;

const LAYOUT_CSS: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;\
padding:0 1rem;color:#222}h1{font-size:1.5rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}\
td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}\
th{background:#f3f3f3}img.main{max-width:100%;max-height:32rem;border:1px solid #ccc}\
img.ref{max-width:10rem;max-height:8rem}.warn{background:#fff3cd;border:1px solid #e0c060;padding:.5rem 1rem}\
textarea{width:100%;height:6rem;font:inherit}label{display:block;margin:.6rem 0 .2rem}\
button{margin-top:1rem;padding:.4rem 1.2rem;font:inherit}code{font-size:.85rem}";

const INDEX: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iat2i</title>
<style>{{ css }}</style></head><body>
<h1>iat2i: try a prompt</h1>
<p>The prompt is checked for what an image model may not know; when it needs a reference,
the web is searched, the best image is chosen with CLIP and the generator is given it;
a vision model judges each image. You land on the run's report.</p>
<form method="post" action="/try" enctype="multipart/form-data">
<label for="prompt">Prompt</label>
<textarea id="prompt" name="prompt" required maxlength="{{ max_prompt }}" placeholder="A Graphorn grazing at dusk"></textarea>
<label for="model">Pipeline</label>
<select id="model" name="model">{% for m in models %}<option value="{{ m }}">{{ m }}</option>{% endfor %}</select>
<label for="image">An image to edit (optional: PNG, JPEG or WebP)</label>
<input id="image" name="image" type="file" accept="image/png,image/jpeg,image/webp">
{% if keys %}<label for="key">API key</label><input id="key" name="key" type="password" required autocomplete="off">{% endif %}
<div><button type="submit">Generate</button></div>
</form>
<p>The same service speaks the OpenAI Images API at <code>/v1/images/generations</code> and
<code>/v1/images/edits</code>: point an OpenAI client's base URL at <code>/v1</code>.</p>
</body></html>"#;

const REPORT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iat2i report {{ id }}</title>
<style>{{ css }}</style></head><body>
<h1>Report {{ id }}</h1>
<p><strong>Prompt:</strong> <span id="prompt">{{ r.request.prompt }}</span></p>
<p><strong>Pipeline:</strong> {{ model }} &middot; <strong>Stopped:</strong> {{ r.stop_reason }}
&middot; <a href="/v1/reports/{{ id }}">report JSON</a></p>
{% if degraded %}<div class="warn" id="degraded"><strong>This run lost something on the way:</strong><ul>
{% for d in degraded %}<li>{{ d }}</li>{% endfor %}</ul></div>{% endif %}
<p><img class="main" id="image" src="/reports/{{ id }}/image" alt="the generated image"></p>
<h2>References</h2>
{% if references %}<table id="references"><tr><th>Image</th><th>Shows</th><th>Source</th><th>Licence</th><th>Creator</th></tr>
{% for ref in references %}<tr><td><img class="ref" src="{{ ref.image_url }}" alt="{{ ref.label }}"></td>
<td>{{ ref.label }}</td>
<td>{% if ref.source_page %}<a href="{{ ref.source_page }}" rel="noopener noreferrer">{{ ref.title or ref.source_page }}</a>{% else %}{{ ref.engine }}{% endif %}</td>
<td>{% if ref.license %}{% if ref.license.url %}<a href="{{ ref.license.url }}">{{ ref.license.code }} {{ ref.license.version or "" }}</a>{% else %}{{ ref.license.code }} {{ ref.license.version or "" }}{% endif %}{% else %}unknown{% endif %}</td>
<td>{{ ref.creator or "" }}</td></tr>{% endfor %}</table>
{% else %}<p id="references">No reference was used{% if r.gate_mode == "never" %}: this pipeline never searches (gate mode never){% elif r.assessment and not r.assessment.needs_reference %}: the gate judged the prompt common knowledge{% endif %}.</p>{% endif %}
<h2>Rounds</h2>
<table id="rounds"><tr><th>Round</th><th>Prompt sent</th><th>Aligned</th><th>Scores (instruction, knowledge, reference, aesthetics)</th><th>Feedback</th></tr>
{% for round in r.rounds %}<tr><td>{{ round.round }}</td><td>{{ round.prompt_sent }}</td>
{% if round.verdict %}<td>{{ "yes" if round.verdict.aligned else "no" }}</td>
<td>{{ round.verdict.scores.instruction_following }}, {{ round.verdict.scores.knowledge_consistency }}, {{ round.verdict.scores.reference_use if round.verdict.scores.reference_use is not none else "n/a" }}, {{ round.verdict.scores.aesthetics }}</td>
<td>{{ round.verdict.feedback }}</td>{% else %}<td colspan="3">not judged</td>{% endif %}</tr>{% endfor %}</table>
<h2>Search</h2>
<p><strong>Queries:</strong> {{ r.queries | join(", ") if r.queries else "none" }}</p>
{% for ret in r.retrievals %}<table><tr><th>Engine</th><th>Query</th><th>Results</th><th>Error</th></tr>
{% for run in ret.runs %}<tr><td>{{ run.engine }}</td><td>{{ run.query }}</td><td>{{ run.count }}</td><td>{{ run.error or "" }}</td></tr>{% endfor %}</table>{% endfor %}
<h2>Cost</h2>
<p id="cost">{{ r.usage.lmm_total.total_tokens }} chat tokens in {{ r.usage.lmm_total.calls }} calls;
{{ r.usage.images.total_tokens }} image tokens for {{ r.usage.images.images }} image(s){% if cost is not none %};
about {{ "%.4f" | format(cost) }} USD{% endif %}. {{ r.total_ms }} ms in all.</p>
</body></html>"#;

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env
}

/// The form.
pub fn index(models: &[String], keys: bool, max_prompt: usize) -> Result<String, minijinja::Error> {
    env().render_str(
        INDEX,
        context! { css => LAYOUT_CSS, models => models, keys => keys, max_prompt => max_prompt },
    )
}

/// A run's report as a page.
pub fn report(
    id: &str,
    model: &str,
    report: &Report,
    cost: Option<f64>,
) -> Result<String, minijinja::Error> {
    let references: Vec<_> = report.rounds.iter().flat_map(|r| r.references.iter()).fold(
        Vec::new(),
        |mut seen: Vec<&crate::report::ReferenceRecord>, r| {
            if !seen.iter().any(|s| s.image_url == r.image_url) {
                seen.push(r);
            }
            seen
        },
    );
    env().render_str(
        REPORT,
        context! {
            css => LAYOUT_CSS, id => id, model => model, r => report, references => references,
            cost => cost, degraded => report.degraded.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
    )
}

/// A short page for an error met while trying a prompt.
pub fn error(status: u16, message: &str) -> String {
    env()
        .render_str(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>iat2i: error</title>\
             <style>{{ css }}</style></head><body><h1>Error {{ status }}</h1><p id=\"error\">{{ message }}</p>\
             <p><a href=\"/\">Back</a></p></body></html>",
            context! { css => LAYOUT_CSS, status => status, message => message },
        )
        .unwrap_or_else(|_| format!("error {status}"))
}
