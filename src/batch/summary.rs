//! The morning review: `summary.json` (jobs by state and error class, usage and cost,
//! durations, search-engine failures) and `index.html`, a self-contained contact sheet
//! with one card per job, merged over the journals of every shard.
//!
//! The sheet is rendered by minijinja with HTML auto-escaping: prompts and web titles are
//! untrusted, so a prompt holding `<script>` shows as text. A Content-Security-Policy
//! forbids scripts as a second line of defence, and only http(s) links are made links.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::BatchError;
use super::journal::{JobRow, JobState, Journal};
use super::ledger::Tally;
use super::output::write_atomic;

/// The merged summary of one or more journals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// The journals merged.
    pub journals: Vec<String>,
    /// Jobs in all journals.
    pub jobs: usize,
    /// Jobs by state.
    pub by_state: BTreeMap<String, usize>,
    /// Failed or skipped jobs by error class.
    pub by_error_class: BTreeMap<String, usize>,
    /// Chat tokens used.
    pub chat_tokens: i64,
    /// Image tokens used.
    pub image_tokens: i64,
    /// Images generated.
    pub images: i64,
    /// Estimated cost in US dollars (from the price table; built-in prices are estimates).
    pub cost_usd: f64,
    /// Median job duration in milliseconds.
    pub duration_p50_ms: Option<i64>,
    /// 95th percentile job duration in milliseconds.
    pub duration_p95_ms: Option<i64>,
    /// Per search engine: how many searches ran and how many failed or were blocked.
    pub engines: BTreeMap<String, EngineCount>,
    /// Paid calls that were in flight when a process died (SIGKILL, power loss), or are
    /// in flight now: they may have been billed, and their cost is not in `cost_usd`.
    pub interrupted_paid_calls: i64,
    /// Those calls at their reservation: the images they may have returned and their
    /// estimated cost (chat calls reserve nothing, so only their count is known).
    pub possibly_billed: Tally,
    /// Paid calls that returned (`images`, `cost_usd` and the token counts are theirs).
    pub billed_calls: i64,
}

/// One engine's searches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineCount {
    /// Searches run.
    pub runs: u64,
    /// Searches that failed or were blocked.
    pub failed: u64,
}

/// Merge the rows of `journals` (each journal's outputs are in its own folder).
pub fn summarize(journals: &[PathBuf]) -> Result<(Summary, Vec<(PathBuf, JobRow)>), BatchError> {
    let mut s = Summary::default();
    let mut all = Vec::new();
    let mut durations = Vec::new();
    for path in journals {
        let j = Journal::open_read_only(path)?;
        s.journals.push(path.display().to_string());
        // Totals from the ledger: every paid call, including those of jobs retried,
        // interrupted or cut off by a kill.
        let spend = j.spend()?;
        s.chat_tokens += spend.billed.chat_tokens;
        s.image_tokens += spend.billed.image_tokens;
        s.images += spend.billed.images;
        s.cost_usd += spend.billed.cost_usd;
        s.billed_calls += spend.billed.calls;
        let mut cut = spend.interrupted;
        cut.calls += spend.in_flight.calls;
        cut.images += spend.in_flight.images;
        cut.cost_usd += spend.in_flight.cost_usd;
        s.interrupted_paid_calls += cut.calls;
        s.possibly_billed.calls += cut.calls;
        s.possibly_billed.images += cut.images;
        s.possibly_billed.cost_usd += cut.cost_usd;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        for row in j.rows()? {
            s.jobs += 1;
            *s.by_state
                .entry(row.state.as_str().to_string())
                .or_default() += 1;
            if matches!(row.state, JobState::Failed | JobState::Skipped) {
                let class = row.error_class.clone().unwrap_or_else(|| "internal".into());
                *s.by_error_class.entry(class).or_default() += 1;
            }
            if row.state == JobState::Done
                && let Some(d) = row.duration_ms
            {
                durations.push(d);
            }
            if let Some(e) = &row.engines
                && let Ok(m) = serde_json::from_str::<BTreeMap<String, [u64; 2]>>(e)
            {
                for (name, [runs, failed]) in m {
                    let c = s.engines.entry(name).or_default();
                    c.runs += runs;
                    c.failed += failed;
                }
            }
            all.push((dir.clone(), row));
        }
    }
    durations.sort_unstable();
    s.duration_p50_ms = percentile(&durations, 50);
    s.duration_p95_ms = percentile(&durations, 95);
    Ok((s, all))
}

fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1) - 1;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// A second or later reference on a card (one per entity).
#[derive(Debug, Clone, Default, Serialize)]
struct MoreReference {
    file: Option<String>,
    entity: Option<String>,
    source_page: Option<String>,
    license: Option<String>,
}

/// One card of the contact sheet.
#[derive(Debug, Clone, Default, Serialize)]
struct Card {
    id: String,
    prompt: String,
    state: String,
    error: Option<String>,
    image: Option<String>,
    reference: Option<String>,
    /// The entity the first reference is of, when the gate planned one per entity.
    reference_entity: Option<String>,
    /// Every reference after the first: (file, entity, source page, licence).
    more_references: Vec<MoreReference>,
    source_page: Option<String>,
    title: Option<String>,
    license: Option<String>,
    creator: Option<String>,
    rounds: usize,
    scores: Vec<String>,
    stop_reason: Option<String>,
    interrupted_calls: i64,
}

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'">
<title>iat2i batch: {{ summary.jobs }} jobs</title>
<style>
body{font-family:system-ui,sans-serif;margin:1rem;background:#fafafa}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:1rem}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem;min-width:0;overflow-wrap:anywhere}
.card img.main{width:100%;height:auto;background:#eee}
.ref{display:flex;gap:.5rem;align-items:flex-start;font-size:.85em}
.ref img{width:64px;height:64px;object-fit:cover}
.state{font-weight:bold}.done{color:#060}.failed{color:#a00}.pending,.running,.skipped{color:#666}
.prompt{white-space:pre-wrap}
</style></head><body>
<h1>Batch summary</h1>
<p>{{ summary.jobs }} jobs:
{% for state, n in summary.by_state|items %}{{ n }} {{ state }}{% if not loop.last %}, {% endif %}{% endfor %}.
Images {{ summary.images }}, tokens {{ summary.chat_tokens + summary.image_tokens }},
estimated cost {{ cost }} USD.{% if summary.interrupted_paid_calls %}
<strong>{{ summary.interrupted_paid_calls }} paid call(s) were in flight when a process died:
they may have been billed and are not in the cost (reserved: {{ summary.possibly_billed.images }}
image(s), about {{ possibly }} USD).</strong>{% endif %}</p>
<div class="grid">
{% for c in cards %}<div class="card" id="job-{{ c.id }}">
<div><span class="state {{ c.state }}">{{ c.state }}</span> <code>{{ c.id }}</code></div>
<p class="prompt">{{ c.prompt }}</p>
{% if c.image %}<a href="{{ c.image }}"><img class="main" src="{{ c.image }}" alt="generated image for {{ c.id }}"></a>{% endif %}
{% if c.reference or c.source_page %}<div class="ref">
{% if c.reference %}<img src="{{ c.reference }}" alt="reference">{% endif %}
<div>{% if c.reference_entity %}<strong>{{ c.reference_entity }}</strong><br>{% endif %}{% if c.source_page %}<a href="{{ c.source_page }}" rel="noopener noreferrer">{{ c.title or c.source_page }}</a>{% elif c.title %}{{ c.title }}{% endif %}
{% if c.license %}<br>licence: {{ c.license }}{% endif %}
{% if c.creator %}<br>by {{ c.creator }}{% endif %}</div></div>{% endif %}
{% for m in c.more_references %}<div class="ref">
{% if m.file %}<img src="{{ m.file }}" alt="reference of {{ m.entity or 'another entity' }}">{% endif %}
<div>{% if m.entity %}<strong>{{ m.entity }}</strong><br>{% endif %}{% if m.source_page %}<a href="{{ m.source_page }}" rel="noopener noreferrer">{{ m.source_page }}</a>{% endif %}
{% if m.license %}<br>licence: {{ m.license }}{% endif %}</div></div>
{% endfor %}
<p>rounds: {{ c.rounds }}{% if c.scores %}; scores: {{ c.scores|join(", ") }}{% endif %}</p>
{% if c.stop_reason %}<p>{{ c.stop_reason }}</p>{% endif %}
{% if c.interrupted_calls %}<p class="failed">{{ c.interrupted_calls }} paid call(s) in flight when an earlier process died (may have been billed)</p>{% endif %}
{% if c.error %}<p class="failed">{{ c.error }}</p>{% endif %}
</div>
{% endfor %}</div></body></html>
"#;

/// The contact sheet for `rows` (from [`summarize`]), with links relative to `out`.
pub fn render_contact_sheet(
    summary: &Summary,
    rows: &[(PathBuf, JobRow)],
    out: &Path,
) -> Result<String, BatchError> {
    let cards: Vec<Card> = rows.iter().map(|(dir, row)| card(dir, row, out)).collect();
    let mut env = minijinja::Environment::new();
    env.add_template("index.html", TEMPLATE)
        .map_err(|e| BatchError::Template(e.to_string()))?;
    let tmpl = env
        .get_template("index.html")
        .map_err(|e| BatchError::Template(e.to_string()))?;
    tmpl.render(minijinja::context! {
        summary => summary,
        cards => cards,
        cost => format!("{:.2}", summary.cost_usd),
        possibly => format!("{:.2}", summary.possibly_billed.cost_usd),
    })
    .map_err(|e| BatchError::Template(e.to_string()))
}

/// Write `summary.json` and `index.html` into `out` for `journals`.
pub fn write_summary(journals: &[PathBuf], out: &Path) -> Result<Summary, BatchError> {
    let (summary, rows) = summarize(journals)?;
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| BatchError::Io {
        path: out.join("summary.json"),
        source: std::io::Error::other(e),
    })?;
    write_atomic(&out.join("summary.json"), &json)?;
    let html = render_contact_sheet(&summary, &rows, out)?;
    write_atomic(&out.join("index.html"), html.as_bytes())?;
    Ok(summary)
}

/// `path` relative to `base` when it is inside it (the usual case: the journals and the
/// sheet share the output folder), else absolute.
fn relative(path: &Path, base: &Path) -> String {
    let (p, b) = (
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf()),
    );
    match p.strip_prefix(&b) {
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => format!("file://{}", p.display()),
    }
}

fn http_only(url: Option<&str>) -> Option<String> {
    url.filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_string)
}

fn card(dir: &Path, row: &JobRow, out: &Path) -> Card {
    let mut c = Card {
        id: row.id.clone(),
        prompt: row.prompt.clone(),
        state: row.state.as_str().to_string(),
        error: row.error_message.clone(),
        interrupted_calls: row.interrupted_calls,
        ..Card::default()
    };
    let Some(sub) = &row.output_dir else {
        return c;
    };
    let job_dir = dir.join(sub);
    let image = job_dir.join("image.png");
    if row.state == JobState::Done && image.exists() {
        c.image = Some(relative(&image, out));
    }
    if let Ok(text) = std::fs::read(job_dir.join("reference.json"))
        && let Ok(r) = serde_json::from_slice::<serde_json::Value>(&text)
    {
        if let Some(file) = r["file"].as_str()
            && job_dir.join(file).exists()
        {
            c.reference = Some(relative(&job_dir.join(file), out));
        }
        c.more_references = r["all"]
            .as_array()
            .into_iter()
            .flatten()
            .skip(1)
            .map(|m| MoreReference {
                file: m["file"]
                    .as_str()
                    .filter(|f| !f.contains('/') && job_dir.join(f).exists())
                    .map(|f| relative(&job_dir.join(f), out)),
                entity: m["entity"].as_str().map(str::to_string),
                source_page: http_only(m["source_page"].as_str()),
                license: m["license"]["code"].as_str().map(str::to_string),
            })
            .collect();
        c.reference_entity = r["entity"].as_str().map(str::to_string);
        c.source_page = http_only(r["source_page"].as_str());
        c.title = r["title"].as_str().map(str::to_string);
        c.creator = r["creator"].as_str().map(str::to_string);
        c.license =
            r["license"]["code"]
                .as_str()
                .map(|code| match r["license"]["version"].as_str() {
                    Some(v) => format!("{code} {v}"),
                    None => code.to_string(),
                });
    }
    if let Ok(text) = std::fs::read(job_dir.join("report.json"))
        && let Ok(r) = serde_json::from_slice::<serde_json::Value>(&text)
    {
        let rounds = r["report"]["rounds"].as_array();
        c.rounds = rounds.map_or(0, Vec::len);
        c.scores = rounds
            .into_iter()
            .flatten()
            .filter_map(|round| {
                let s = &round["verdict"]["scores"];
                let obj = s.as_object()?;
                let vals: Vec<f64> = obj.values().filter_map(|v| v.as_f64()).collect();
                (!vals.is_empty())
                    .then(|| format!("{:.1}", vals.iter().sum::<f64>() / vals.len() as f64))
            })
            .collect();
        c.stop_reason = r["report"]["stop_reason"].as_str().map(str::to_string);
    }
    c
}
