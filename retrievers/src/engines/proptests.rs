//! Property tests: no parser panics, whatever it is fed.
//!
//! (cargo-fuzz needs a nightly toolchain; these run on stable in the normal suite.)

use proptest::prelude::*;
use serde_json::{Value, json};
use url::Url;

use super::{bing, brave, duckduckgo, local, openverse, searxng, util, wikimedia};

fn page() -> Url {
    Url::parse("https://engine.example/search?q=x").unwrap()
}

/// Arbitrary JSON, biased towards the shapes engines use.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
        "(https?:)?//[a-z.]{1,12}/[a-z0-9/%._-]{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::hash_map(
                prop_oneof![
                    Just("url".to_string()),
                    Just("image".to_string()),
                    Just("img_src".to_string()),
                    Just("thumbnail".to_string()),
                    Just("width".to_string()),
                    Just("height".to_string()),
                    Just("imageinfo".to_string()),
                    Just("extmetadata".to_string()),
                    Just("properties".to_string()),
                    Just("license".to_string()),
                    Just("index".to_string()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON answer with `results` (or `query.pages`) holding arbitrary items.
fn answer_json() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(any_json(), 0..8), any_json()).prop_map(|(items, extra)| {
        serde_json::to_vec(&json!({
            "results": items.clone(),
            "next": extra.clone(),
            "page_count": extra.clone(),
            "continue": extra,
            "query": {"pages": items},
        }))
        .unwrap()
    })
}

fn run_json_parsers(body: &[u8]) {
    let p = page();
    let _ = duckduckgo::parse_results(body, &p, "q");
    let _ = wikimedia::parse_answer(body, &p, "q");
    let _ = openverse::parse_page(body, &p, "q");
    let _ = searxng::parse_page(body, &p, "q");
    let _ = brave::parse_page(body, &p, "q");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_parsers_survive_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        run_json_parsers(&body);
    }

    #[test]
    fn json_parsers_survive_arbitrary_result_shapes(body in answer_json()) {
        run_json_parsers(&body);
    }

    #[test]
    fn json_parsers_survive_truncation(body in answer_json(), cut in any::<prop::sample::Index>()) {
        let end = cut.index(body.len() + 1);
        run_json_parsers(&body[..end]);
    }

    #[test]
    fn bing_parser_survives_arbitrary_html(
        text in ".{0,300}",
        m in any_json(),
        info in ".{0,30}",
    ) {
        let m = serde_json::to_string(&m).unwrap().replace('&', "&amp;").replace('"', "&quot;");
        let html = format!(
            "<ul class=\"dgControl_list\"><li><div class=\"imgpt\"><a class=\"iusc\" m=\"{m}\">{text}</a>\
             <div class=\"img_info\"><span class=\"nowrap\">{info}</span></div></div></li></ul>"
        );
        let _ = bing::parse_page(&html, &page(), "q");
        let _ = bing::parse_page(&text, &page(), "q");
    }

    #[test]
    fn vqd_and_small_parsers_survive_anything(text in "(.|vqd=|vqd=\"|\"vqd\":\"){0,200}") {
        let _ = duckduckgo::parse_vqd(&text);
        let _ = util::parse_resolution(&text);
        let _ = util::strip_html(&text);
        let _ = util::resolve(&page(), &text);
        let _ = local::tokens(&text);
    }

    #[test]
    fn vqd_found_is_always_a_clean_token(prefix in ".{0,50}", token in "[0-9]-[0-9]{10,40}", suffix in ".{0,50}") {
        let html = format!("{prefix}vqd=\"{token}\"{suffix}");
        let got = duckduckgo::parse_vqd(&html).unwrap();
        prop_assert!(got.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn sidecars_never_panic(json in any_json(), raw in ".{0,100}") {
        let _ = serde_json::from_value::<local::Sidecar>(json);
        let _ = serde_json::from_str::<local::Sidecar>(&raw);
    }

    #[test]
    fn normalisation_never_panics_and_is_stable(s in "(https?://)?[a-zA-Z0-9.:/?&=%_#\\[\\]@-]{0,80}") {
        if let Ok(u) = Url::parse(&s) {
            let k = crate::normalize_url(&u);
            if let Ok(again) = Url::parse(u.as_str()) {
                prop_assert_eq!(k, crate::normalize_url(&again));
            }
        }
    }
}
