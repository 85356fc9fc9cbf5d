//! eval.html's charts in a real browser: headless Chromium (Debian's `chromium` package)
//! opens a page rendered from a known report, the DOM says every bar and pair segment has
//! the size its number gives, and a screenshot shows the bars in the arms' colours.
//! Skipped, saying so, where Chromium is not installed; under `CI=true` that fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{chromium, skip_or_fail};
use iat2i::eval::{
    ARM_COLOURS, ArmSummary, CategoryScores, EvalReport, PairSummary, Score, render_html,
};

fn score(mean: f64) -> Score {
    Score {
        n: 20,
        missing: 0,
        mean: Some(mean),
        ci_low: Some(mean - 0.08),
        ci_high: Some(mean + 0.06),
    }
}

/// Two arms over WISE's six categories (augmented ahead everywhere), and their pair.
fn report() -> EvalReport {
    let categories = [
        "cultural",
        "time",
        "space",
        "biology",
        "physics",
        "chemistry",
    ];
    let arm = |name: &str, base: f64| ArmSummary {
        name: name.into(),
        wiscore: score(base + 0.1),
        categories: categories
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = CategoryScores {
                    wiscore: score(base + 0.05 * i as f64),
                    ..CategoryScores::default()
                };
                (c.to_string(), s)
            })
            .collect::<BTreeMap<_, _>>(),
        ..ArmSummary::default()
    };
    EvalReport {
        prompt_set: "wise-sample".into(),
        prompts_total: 120,
        judge_model: "gpt-4o-mini".into(),
        arms: vec![arm("baseline", 0.3), arm("augmented", 0.55)],
        pairs: vec![PairSummary {
            a: "baseline".into(),
            b: "augmented".into(),
            n: 100,
            missing: 20,
            a_wins: 0.2,
            ties: 0.3,
            b_wins: 0.5,
            judge_tokens: 0,
        }],
        ..EvalReport::default()
    }
}

/// Runs in the page's frame: the rendered size of each chart element.
const PROBE: &str = r#"<!doctype html><html><body><div id="result">pending</div>
<iframe id="f" src="eval.html" width="1200" height="1400"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument;
  var bars = d.querySelectorAll('svg.category-chart rect.bar'), tall = 0;
  for (var i = 0; i < bars.length; i++) { if (bars[i].getBoundingClientRect().height > 20) tall++; }
  var seg = function (sel) { var e = d.querySelector('svg.pair-chart ' + sel); return e ? Math.round(e.getBoundingClientRect().width) : -1; };
  document.getElementById('result').textContent = 'charts=' + d.querySelectorAll('svg').length +
    ' bars=' + bars.length + ' tall=' + tall +
    ' whiskers=' + d.querySelectorAll('svg.category-chart path.interval').length +
    ' a=' + seg('rect.win[data-arm="baseline"]') + ' tie=' + seg('rect.tie') +
    ' b=' + seg('rect.win[data-arm="augmented"]');
});
</script></body></html>"#;

fn hex(colour: &str) -> [u8; 3] {
    let v = u32::from_str_radix(colour.trim_start_matches('#'), 16).unwrap_or_default();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

fn run(browser: &Path, args: &[&str], url: &str) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .arg(url)
        .output()
        .unwrap()
}

#[test]
fn eval_html_draws_its_charts_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let html = render_html(&report()).unwrap();
    assert!(html.contains("<svg class=\"category-chart\""));
    assert!(html.contains("<svg class=\"pair-chart\""));
    std::fs::write(dir.path().join("eval.html"), &html).unwrap();
    let Some(browser) = chromium() else {
        skip_or_fail("Chromium is not installed (apt-get install chromium)");
        return;
    };

    // The DOM: 12 bars of visible height with their whiskers, and the pair's segments in
    // proportion (20 % / 30 % / 50 % of a 420-pixel bar).
    std::fs::write(dir.path().join("probe.html"), PROBE).unwrap();
    let probe = format!("file://{}", dir.path().join("probe.html").display());
    let out = run(&browser, &["--dump-dom"], &probe);
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("id=\"result\">").expect("the probe page rendered") + 12;
    let result = &dom[start..start + dom[start..].find('<').unwrap_or(0)];
    assert_eq!(
        result, "charts=2 bars=12 tall=12 whiskers=12 a=84 tie=126 b=210",
        "{result}"
    );

    // The screenshot: the bars are painted in the arms' colours, the ties in grey.
    let shot = dir.path().join("eval.png");
    let page = format!("file://{}", dir.path().join("eval.html").display());
    let window = "--window-size=1200,1400";
    let out = run(
        &browser,
        &[window, &format!("--screenshot={}", shot.display())],
        &page,
    );
    assert!(shot.is_file(), "no screenshot: {out:?}");
    let image = image::open(&shot).unwrap().to_rgb8();
    let count = |rgb: [u8; 3]| {
        image
            .pixels()
            .filter(|p| p.0.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 3))
            .count()
    };
    let base = count(hex(ARM_COLOURS[0]));
    let aug = count(hex(ARM_COLOURS[1]));
    let ties = count([0xc8, 0xc8, 0xc8]);
    // Six bars of 15 px by at least 0.25 × 180 px each, and the pair's segments.
    assert!(base > 6 * 15 * 45, "baseline's colour: {base} pixels");
    assert!(aug > base, "augmented's bars are taller: {aug} vs {base}");
    assert!(ties >= 126 * 20 - 100, "the ties' segment: {ties} pixels");
    let blank = image.pixels().filter(|p| p.0 == [255, 255, 255]).count();
    assert!(blank < image.pixels().len(), "the screenshot is not blank");
}
