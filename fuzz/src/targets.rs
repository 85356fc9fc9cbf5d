//! The fuzz targets: every parser of outside input, with seeds from the fixtures. The
//! search engines' and LMM replies' are here; the image generators' answers are in
//! `generators`, the prompt sets and batch manifests in `loaders`.

mod generators;
mod loaders;

use std::path::PathBuf;

use bytes::Bytes;
use iat2i_selectors::FetchConfig;

/// One parser under test.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its name (`make fuzz TARGETS=…`).
    pub name: &'static str,
    /// Run it on one input; returns an outcome signature.
    pub run: fn(&[u8]) -> String,
    /// Fixture files (below `fixtures/`) that seed it.
    pub fixtures: &'static [&'static str],
    /// Extra seeds written here.
    pub extra: &'static [&'static str],
    /// Tokens the mutator inserts.
    pub dict: &'static [&'static [u8]],
    /// Seeds are JSON (structure-aware mutations apply).
    pub json: bool,
    /// Seeds are chat completions: the seed is `choices[0].message.content`.
    pub chat_content: bool,
}

const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"-1",
    b"1e999",
    b"\"\\u0000\"",
    b"\\",
    b"\"\\ud800\"",
    b"\"results\":",
    b"\"extmetadata\":[]",
    b"\"url\":\"//x/y.jpg\"",
    b"\"title\":\"<b>a</b>&amp;\"",
    b"\"width\":\"12x\"",
    b"\"license\":\"by-nc-nd\"",
    b"\"next\":\"http://127.0.0.1/i.js\"",
];

const HTML_DICT: &[&[u8]] = &[
    b"<a class=\"iusc\" m=\"",
    b"&quot;",
    b"&amp;",
    b"&#",
    b"&#x",
    b"<li>",
    b"</li>",
    b"<div class=\"imgpt\">",
    b"<div class=\"img_info\"><span class=\"nowrap\">",
    b"1920 x 1080 \xc2\xb7 jpeg",
    b"<script>",
    b"</script>",
    b"<!--",
    b"-->",
    b"\"",
    b"'",
    b"vqd=\"",
    b"vqd='",
    b"\"vqd\":\"",
    b"vqd=4-",
    b"&",
    b"murl",
    b"turl",
    b"\xee\x80\x80",
    b"captcha",
    b"dgControl_list",
    b"<ul class=\"dgControl_list\">",
];

const TEXT_DICT: &[&[u8]] = &[
    b"```json\n",
    b"```",
    b"{",
    b"}",
    b"\"",
    b"[",
    b"]",
    b"\\",
    b"{\"aligned\":",
    b"null",
    b"\"action\":\"refine_prompt\"",
    b"\"action\":\"research\"",
    b"\"new_queries\":[]",
    b"\"scores\":{}",
    b"\"needs_reference\":true",
    b"\"gap\":\"unknown\"",
    b"\"queries\":[]",
    b"{{{{{{{{",
    b"}}}}",
    b"\xf0\x9f\x90\xb8",
    b"\n",
];

const IMAGE_DICT: &[&[u8]] = &[
    b"\x89PNG\r\n\x1a\n",
    b"IHDR",
    b"IDAT",
    b"IEND",
    b"\xff\xd8\xff",
    b"\xff\xc0",
    b"\xff\xda",
    b"GIF89a",
    b"RIFF",
    b"WEBPVP8 ",
    b"WEBPVP8L",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"Exif\x00\x00",
];

const LICENCE_DICT: &[&[u8]] = &[
    b"cc",
    b"-by",
    b"-sa",
    b"-nc",
    b"-nd",
    b"cc0",
    b"pdm",
    b"pd",
    b"sampling+",
    b"public domain",
    b"4.0",
    b"\n",
    b"https://creativecommons.org/licenses/",
    b"/publicdomain/zero/1.0/",
    b"gfdl",
];

fn image_config() -> FetchConfig {
    let mut cfg = FetchConfig::default();
    cfg.max_dimension = 2048;
    cfg.max_alloc = 32 * 1024 * 1024;
    cfg
}

fn image(input: &[u8]) -> String {
    let ct = match input.first() {
        Some(b) if b % 3 == 0 => Some("image/png"),
        Some(b) if b % 3 == 1 => Some("text/html"),
        _ => None,
    };
    match iat2i_selectors::prepare_image(Bytes::copy_from_slice(input), ct, &image_config()) {
        Ok(p) => format!("ok {}", p.mime),
        Err(e) => format!("err {}", e.split_whitespace().next().unwrap_or("")),
    }
}

fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

fn lmm_json(input: &[u8]) -> String {
    match iat2i::lmm::extract_json(&text(input)) {
        Some(v) => format!("some {}", v.is_object()),
        None => "none".to_string(),
    }
}

fn judge(input: &[u8]) -> String {
    match iat2i::judge::parse_verdict_reply(&text(input), "a Xenopus laevis frog") {
        Some(v) => format!("verdict {}", v.aligned),
        None => "none".to_string(),
    }
}

fn gate(input: &[u8]) -> String {
    match iat2i::gate::parse_assessment_reply(&text(input), "a Xenopus laevis frog", 3) {
        Some(a) => format!("assessment {} {}", a.needs_reference, a.queries.len()),
        None => "none".to_string(),
    }
}

use iat2i_retrievers::fuzzing as r;

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "bing",
        run: r::bing,
        fixtures: &[
            "retrievers/bing/search_page1.html",
            "retrievers/bing/search_page2.html",
            "retrievers/bing/no_results.html",
            "retrievers/bing/captcha.html",
            "retrievers/bing/challenge_script.html",
        ],
        extra: &[],
        dict: HTML_DICT,
        json: false,
        chat_content: false,
    },
    Target {
        name: "duckduckgo",
        run: r::duckduckgo,
        fixtures: &[
            "retrievers/duckduckgo/i_page1.json",
            "retrievers/duckduckgo/i_page2.json",
            "retrievers/duckduckgo/i_empty.json",
        ],
        extra: &[],
        dict: JSON_DICT,
        json: true,
        chat_content: false,
    },
    Target {
        name: "duckduckgo_vqd",
        run: r::duckduckgo_vqd,
        fixtures: &[
            "retrievers/duckduckgo/search_page.html",
            "retrievers/duckduckgo/bot_check.html",
        ],
        extra: &[],
        dict: HTML_DICT,
        json: false,
        chat_content: false,
    },
    Target {
        name: "wikimedia",
        run: r::wikimedia,
        fixtures: &[
            "retrievers/wikimedia/search_page1.json",
            "retrievers/wikimedia/search_page2.json",
            "retrievers/wikimedia/licences.json",
            "retrievers/wikimedia/api_error.json",
        ],
        extra: &[],
        dict: JSON_DICT,
        json: true,
        chat_content: false,
    },
    Target {
        name: "openverse",
        run: r::openverse,
        fixtures: &[
            "retrievers/openverse/page1.json",
            "retrievers/openverse/page2.json",
            "retrievers/openverse/licences.json",
            "retrievers/openverse/throttled.json",
        ],
        extra: &[],
        dict: JSON_DICT,
        json: true,
        chat_content: false,
    },
    Target {
        name: "brave",
        run: r::brave,
        fixtures: &[
            "retrievers/brave/results.json",
            "retrievers/brave/invalid_token.json",
        ],
        extra: &[],
        dict: JSON_DICT,
        json: true,
        chat_content: false,
    },
    Target {
        name: "searxng",
        run: r::searxng,
        fixtures: &[
            "retrievers/searxng/results.json",
            "retrievers/searxng/empty.json",
        ],
        extra: &[],
        dict: JSON_DICT,
        json: true,
        chat_content: false,
    },
    Target {
        name: "local_sidecar",
        run: r::local_sidecar,
        fixtures: &[
            "retrievers/local/mascot/frog-mascot.json",
            "retrievers/local/broken-sidecar.json",
        ],
        extra: &[r#"{"caption": "a", "tags": "x, y", "license": "cc-by-4.0", "author": "b"}"#],
        dict: JSON_DICT,
        json: true,
        chat_content: false,
    },
    Target {
        name: "licence",
        run: r::licence,
        fixtures: &[],
        extra: &[
            "by-nc-sa\n4.0\nhttps://creativecommons.org/licenses/by-nc-sa/4.0/",
            "cc-by-sa-3.0-de",
            "CC BY-SA 4.0",
            "Public domain",
            "nc-sampling+\n1.0",
            "x\n\nhttps://creativecommons.org/publicdomain/zero/1.0/",
        ],
        dict: LICENCE_DICT,
        json: false,
        chat_content: false,
    },
    Target {
        name: "image",
        run: image,
        fixtures: &[
            "selectors/cmyk.jpg",
            "selectors/exif_rotated.jpg",
            "openai/input.png",
            "openai/reference_a.png",
            "retrievers/local/brand-logo-red.png",
        ],
        extra: &[],
        dict: IMAGE_DICT,
        json: false,
        chat_content: false,
    },
    Target {
        name: "lmm_json",
        run: lmm_json,
        fixtures: &[
            "openai/gate_fenced_prose.json",
            "openai/gate_needs_reference.json",
            "openai/chat_garbage.json",
            "openai/chat_pick.json",
            "openai/verdict_refine.json",
        ],
        extra: &[
            "Sure! ```json\n{\"a\": [1, {\"b\": \"}\"}]}\n``` done",
            "{\"a\":{\"b\":",
        ],
        dict: TEXT_DICT,
        json: false,
        chat_content: true,
    },
    Target {
        name: "judge",
        run: judge,
        fixtures: &[
            "openai/verdict_aligned.json",
            "openai/verdict_refine.json",
            "openai/verdict_research.json",
            "openai/verdict_poor.json",
            "openai/verdict_knowledge_gap.json",
            "openai/verdict_drop_reference.json",
        ],
        extra: &[],
        dict: TEXT_DICT,
        json: false,
        chat_content: true,
    },
    Target {
        name: "gate",
        run: gate,
        fixtures: &[
            "openai/gate_needs_reference.json",
            "openai/gate_no_reference.json",
            "openai/gate_fenced_prose.json",
        ],
        extra: &[],
        dict: TEXT_DICT,
        json: false,
        chat_content: true,
    },
    generators::GEMINI,
    generators::CHAT_IMAGES,
    generators::COMFYUI_PROMPT,
    generators::COMFYUI_HISTORY,
    generators::COMFYUI_WS,
    generators::COMFYUI_OBJECT_INFO,
    loaders::WISE,
    loaders::WORLDGENBENCH,
    loaders::EVAL_MANIFEST,
    loaders::BATCH_JSONL,
    loaders::BATCH_CSV,
    loaders::BATCH_TEXT,
];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

impl Target {
    /// The seed inputs: its fixtures (a chat completion's message content where
    /// `chat_content`) and its extra seeds; never empty.
    pub fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds: Vec<Vec<u8>> = self.extra.iter().map(|s| s.as_bytes().to_vec()).collect();
        for f in self.fixtures {
            let Ok(bytes) = std::fs::read(fixtures_dir().join(f)) else {
                eprintln!("fuzz {}: seed fixture {f} missing, skipped", self.name);
                continue;
            };
            let content = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.pointer("/choices/0/message/content")
                        .and_then(|c| c.as_str())
                        .map(String::from)
                });
            if self.chat_content
                && let Some(content) = content
            {
                seeds.push(content.into_bytes());
            }
            seeds.push(bytes);
        }
        if seeds.is_empty() {
            seeds.push(b"{}".to_vec());
        }
        seeds
    }
}
