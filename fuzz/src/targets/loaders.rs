//! Targets for the files a user hands over: evaluation prompt sets (WISE, WorldGenBench,
//! plain manifests) and batch manifests (JSONL, CSV, text).

use std::path::Path;

use iat2i::batch::{Format as BatchFormat, Manifest};
use iat2i::eval::{Format, PromptSet, PromptSetError};

use super::Target;

/// A short signature of a prompt set or of why it was refused.
fn prompt_set(r: Result<PromptSet, PromptSetError>) -> String {
    match r {
        Ok(set) => format!(
            "ok {} categories {} checklists {}",
            set.prompts.len().min(4),
            set.categories().len().min(4),
            set.prompts.iter().any(|p| !p.checklist.is_empty())
        ),
        Err(PromptSetError::Io { .. }) => "err io".into(),
        Err(PromptSetError::Json { .. }) => "err json".into(),
        Err(PromptSetError::Entry { index, .. }) => format!("err entry {}", index.min(4)),
        Err(PromptSetError::Line { line, .. }) => format!("err line {}", line.min(4)),
        Err(PromptSetError::Empty { .. }) => "err empty".into(),
        Err(_) => "err other".into(),
    }
}

/// One of `paths`, picked by the input's length, so that each seed is also read under
/// the other names (file names steer WISE's edition, WorldGenBench's domain and a
/// manifest's JSONL-or-text choice).
fn pick<'a>(input: &[u8], paths: &[&'a str]) -> &'a Path {
    Path::new(paths[input.len() % paths.len()])
}

fn wise(input: &[u8]) -> String {
    let path = pick(
        input,
        &[
            "cultural_common_sense.json",
            "natural_science_verified.json",
        ],
    );
    let text = String::from_utf8_lossy(input);
    prompt_set(PromptSet::parse(&text, path, Format::Wise))
}

fn worldgenbench(input: &[u8]) -> String {
    let path = pick(
        input,
        &["humanities_en.json", "nature_en.json", "wgb.jsonl", ""],
    );
    let text = String::from_utf8_lossy(input);
    prompt_set(PromptSet::parse(&text, path, Format::WorldGenBench))
}

/// A manifest read as [`PromptSet::load`] does for the first name (the format guessed
/// from the name and the first bytes), and as a manifest for the others.
fn eval_manifest(input: &[u8]) -> String {
    let path = pick(input, &["prompts", "prompts.jsonl", "prompts.txt", "p.md"]);
    let text = String::from_utf8_lossy(input);
    let format = if path == Path::new("prompts") {
        Format::detect(path, input.get(..4096).unwrap_or(input))
    } else {
        Format::Manifest
    };
    format!(
        "{} {}",
        format.name(),
        prompt_set(PromptSet::parse(&text, path, format))
    )
}

/// A batch manifest's signature: how many jobs and bad lines, whether any job carries
/// metadata, a gate mode or a round budget.
fn batch(input: &[u8], format: BatchFormat) -> String {
    // A small prompt cap, so that the refusal of long prompts is reached too.
    let m = Manifest::parse_bytes(input, format, 200);
    format!(
        "jobs {} errors {} metadata {} gate {} rounds {}",
        m.jobs.len().min(4),
        m.errors.len().min(4),
        m.jobs.iter().any(|j| !j.metadata.is_null()),
        m.jobs.iter().any(|j| j.gate_mode.is_some()),
        m.jobs.iter().any(|j| j.max_rounds.is_some()),
    )
}

fn batch_jsonl(input: &[u8]) -> String {
    batch(input, BatchFormat::Jsonl)
}

fn batch_csv(input: &[u8]) -> String {
    batch(input, BatchFormat::Csv)
}

fn batch_text(input: &[u8]) -> String {
    batch(input, BatchFormat::Text)
}

const EVAL_DICT: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b",",
    b"\n",
    b"\xef\xbb\xbf",
    b"null",
    b"# ",
    b"\"prompt_id\":",
    b"\"prompt_id\":1000",
    b"\"prompt_id\":0",
    b"\"prompt_id\":\"12\"",
    b"\"prompt_id\":521",
    b"\"Prompt\":\"\"",
    b"\"Explanation\":",
    b"\"Category\":\"Cultural knowledge\"",
    b"\"Category\":\"Biology\"",
    b"\"Subcategory\":",
    b"\"prompt_en\":\"a\"",
    b"\"prompt\":\"a\"",
    b"\"checklist\":[]",
    b"\"checklist\":[\"x\",\"\"]",
    b"\"checklist\":\"1. a\\n- b\\n\xe2\x9c\x93 c\"",
    b"\"checklist_en\":",
    b"\"knowledge_checklist\":[{\"item\":\"x\"}]",
    b"\"check_list\":",
    b"\"Checklist\":",
    b"\"class\":\"Physics\"",
    b"\"category\":\"\"",
    b"\"domain\":",
    b"\"country\":",
    b"\"id\":\"a\"",
    b"\"id\":\".x\"",
    b"\"id\":\"index.html\"",
    b"\"idx\":-1",
    b"\"index\":1.5",
    b"\"subcategory\":",
    b"\"explanation\":",
    b"\"rationale\":[]",
    b"\"checklst\":[]",
];

const BATCH_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b",",
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\xff",
    b"# ",
    b"\"prompt\":\"a\"",
    b"\"prompt\":\"\"",
    b"\"id\":\"a\"",
    b"\"id\":\"../x\"",
    b"\"id\":\"journal.sqlite\"",
    b"\"edit_image\":\"in/a.png\"",
    b"\"edit_image\":null",
    b"\"gate_mode\":\"never\"",
    b"\"gate_mode\":\"generate_first\"",
    b"\"gate_mode\":\"sometimes\"",
    b"\"max_rounds\":0",
    b"\"max_rounds\":4294967296",
    b"\"metadata\":{\"sku\":1}",
    b"\"metadata\":[]",
    b"id,prompt,edit_image,gate_mode,max_rounds,sku\n",
    b"prompt",
    b",\"a, b\"",
    b"\"\"",
    b",never",
    b",always",
    b",-1",
    b",0",
];

/// WISE data files.
pub const WISE: Target = Target {
    name: "wise",
    run: wise,
    fixtures: &["eval/wise_sample.json", "eval/wise_malformed.json"],
    extra: &[
        r#"[{"Prompt": "A typical mobile phone of the year 2000", "Explanation": "a candy-bar phone", "Category": "time", "Subcategory": "Longitudinal time", "prompt_id": 530}, {"Prompt": "Ice floating on water", "Explanation": null, "Category": "Chemistry", "prompt_id": 890}]"#,
        r#"[{"Prompt": "x", "prompt_id": 1}, {"Prompt": "y", "prompt_id": 1}]"#,
        r#"{"Prompt": "x", "prompt_id": 1}"#,
        "[]",
    ],
    dict: EVAL_DICT,
    json: true,
    chat_content: false,
};

/// WorldGenBench files (a JSON array or JSONL).
pub const WORLDGENBENCH: Target = Target {
    name: "worldgenbench",
    run: worldgenbench,
    fixtures: &[
        "eval/worldgenbench/humanities_en.json",
        "eval/worldgenbench/nature_en.json",
        "eval/worldgenbench/malformed.json",
    ],
    extra: &[
        "{\"prompt_en\": \"A snowflake under a microscope.\", \"checklist\": \"1. Six-fold symmetry\\n- Branches\\n\u{2713} Ice\", \"class\": \"Earth Sciences\", \"id\": 4}\n\n{\"prompt\": \"A red kite\", \"knowledge_checklist\": [{\"item\": \"A forked tail\"}, {\"question\": \"Red-brown plumage?\"}], \"country\": \"Wales\", \"id\": \"kite-1\"}\n",
        r#"[{"Prompt": "x", "Checklist": ["a"], "domain": "Nature", "idx": 3, "rationale": "why"}, {"prompt_en": "y", "check_list": [{"text": "b"}, 7], "index": -1}]"#,
    ],
    dict: EVAL_DICT,
    json: true,
    chat_content: false,
};

/// Evaluation manifests (JSONL or one prompt a line), and format detection.
pub const EVAL_MANIFEST: Target = Target {
    name: "eval_manifest",
    run: eval_manifest,
    fixtures: &[
        "eval/manifest.jsonl",
        "eval/prompts.txt",
        "eval/wise_sample.json",
        "eval/worldgenbench/nature_en.json",
    ],
    extra: &[
        "{\"id\": \"a\", \"prompt\": \"A pear\", \"checklist\": [\"green\", \" \"]}\n{\"id\": \"a\", \"prompt\": \"dup\"}\n",
        "{\"prompt\": \"x\", \"checklst\": [\"y\"]}\n",
        "# only a comment\n\n",
    ],
    dict: EVAL_DICT,
    json: false,
    chat_content: false,
};

/// Batch manifests, JSONL.
pub const BATCH_JSONL: Target = Target {
    name: "batch_jsonl",
    run: batch_jsonl,
    fixtures: &["eval/manifest.jsonl"],
    extra: &[
        "{\"id\":\"a\",\"prompt\":\"A red apple\",\"metadata\":{\"sku\":1}}\n\n# a comment\n{\"prompt\":\"\"}\nnot json\n{\"prompt\":\"A pear\",\"gate_mode\":\"never\",\"max_rounds\":2}\n{\"id\":\"a\",\"prompt\":\"dup\"}\n{\"id\":\"../etc\",\"prompt\":\"x\"}\n{\"prompt\":\"x\",\"colour\":\"red\"}\n",
        "\u{feff}{\"prompt\":\"Edit this\",\"edit_image\":\"in/cat.png\",\"gate_mode\":\"always\"}\r\n{\"prompt\":\"x\",\"max_rounds\":0}\n",
    ],
    dict: BATCH_DICT,
    json: false,
    chat_content: false,
};

/// Batch manifests, CSV.
pub const BATCH_CSV: Target = Target {
    name: "batch_csv",
    run: batch_csv,
    fixtures: &[],
    extra: &[
        "id,prompt,sku\nx1,\"A red, shiny apple\",42\nx2,,7\n,A pear,8\n",
        "id,prompt,edit_image,gate_mode,max_rounds\r\nj1,Edit the cat,in/cat.png,generate_first,3\r\nj2,A pear,,never,\r\nj3,A plum,,sometimes,x\r\n",
        "id,text\n1,hello\n",
        "prompt\n\"multi\nline\"\n\n,\n",
    ],
    dict: BATCH_DICT,
    json: false,
    chat_content: false,
};

/// Batch manifests, one prompt a line.
pub const BATCH_TEXT: Target = Target {
    name: "batch_text",
    run: batch_text,
    fixtures: &["eval/prompts.txt"],
    extra: &["A red apple\nA pear\n# a comment\n\nA red apple\n\u{feff}A plum\r\n"],
    dict: BATCH_DICT,
    json: false,
    chat_content: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(super::super::fixtures_dir().join("eval").join(name)).unwrap()
    }

    /// The benchmark fixtures load under the names the targets give them.
    #[test]
    fn the_fixtures_load() {
        let wise_sample = fixture("wise_sample.json");
        assert!(
            wise(&wise_sample).starts_with("ok 4"),
            "{}",
            wise(&wise_sample)
        );
        for f in [
            "worldgenbench/humanities_en.json",
            "worldgenbench/nature_en.json",
        ] {
            let out = worldgenbench(&fixture(f));
            assert!(out.ends_with("checklists true"), "{f}: {out}");
        }
        assert_eq!(
            eval_manifest(b"A pear\nA plum\n"),
            "manifest ok 2 categories 0 checklists false"
        );
        assert!(batch_csv(BATCH_CSV.extra[1].as_bytes()).starts_with("jobs 2 errors 1"));
    }
}
