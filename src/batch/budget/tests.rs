//! The budget's caps, reservations and prices.

use super::*;
use crate::batch::Prices;
use crate::generator::ImageUsage;

#[test]
fn thinking_tokens_are_priced_as_output() {
    let mut prices = PriceTable::default();
    let gemini = Prices {
        input_per_mtok: 2.0,
        output_per_mtok: 120.0,
        per_image: 0.0,
        estimate: false,
    };
    prices
        .models
        .insert("gemini-3-pro-image-preview".into(), gemini);
    let budget = Budget::new(
        Limits::default(),
        prices,
        "gpt-4o-mini",
        "gemini-3-pro-image-preview",
    )
    .unwrap();
    let call = CallUsage {
        image: ImageUsage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            thinking_tokens: 500_000,
            total_tokens: 2_500_000,
            ..ImageUsage::default()
        },
        ..CallUsage::default()
    };
    let (_, tokens, _, usd) = budget.cost_of(PaidCall::Generate, &call);
    assert_eq!(tokens, 2_500_000);
    assert!((usd - (2.0 + 120.0 * 1.5)).abs() < 1e-9, "{usd}");
}

fn budget(limits: Limits) -> Arc<Budget> {
    Arc::new(Budget::new(limits, PriceTable::default(), "gpt-4o-mini", "gpt-image-1").unwrap())
}

fn images(n: u32) -> CallUsage {
    CallUsage {
        image: ImageUsage {
            images: n,
            ..ImageUsage::default()
        },
        ..CallUsage::default()
    }
}

#[tokio::test]
async fn image_reservations_never_overshoot() {
    let budget = budget(Limits {
        max_images: Some(2),
        ..Limits::default()
    });
    let a = BudgetGuard::new(budget.clone(), "a", None);
    let b = BudgetGuard::new(budget.clone(), "b", None);
    let c = BudgetGuard::new(budget.clone(), "c", None);
    assert!(a.before_call(PlannedCall::images(1)).await.is_ok());
    assert!(b.before_call(PlannedCall::images(1)).await.is_ok());
    let h = c.before_call(PlannedCall::images(1)).await.unwrap_err();
    assert_eq!(h.kind, HaltKind::Budget);
    a.after_call(PaidCall::Generate, &images(1)).await;
    assert_eq!(budget.spent.images.load(Ordering::SeqCst), 1);
    assert!(
        (budget.spent.cost() - 0.04).abs() < 1e-9,
        "{}",
        budget.spent.cost()
    );
    assert!(budget.may_start().await.is_err());
}

#[tokio::test]
async fn an_image_call_reserves_every_image_it_may_return() {
    // --max-images 5 --images-per-round 4: the second call could make 8.
    let budget = budget(Limits {
        max_images: Some(5),
        ..Limits::default()
    });
    let g = BudgetGuard::new(budget.clone(), "a", None);
    g.before_call(PlannedCall::images(4)).await.unwrap();
    g.after_call(PaidCall::Generate, &images(4)).await;
    let h = g.before_call(PlannedCall::images(4)).await.unwrap_err();
    assert!(h.message.contains("--max-images 5"), "{h}");
    // A judge of the images already paid for still runs.
    g.before_call(PlannedCall::chat(PaidCall::Judge))
        .await
        .unwrap();
    g.after_call(PaidCall::Judge, &CallUsage::default()).await;
    // One more single image fits.
    g.before_call(PlannedCall::images(1)).await.unwrap();
}

#[tokio::test]
async fn an_image_call_reserves_its_estimated_price_against_the_cost_cap() {
    // gpt-image-1 is estimated at 0.04 USD an image: 0.10 holds two, not three.
    let budget = budget(Limits {
        max_cost: Some(0.10),
        ..Limits::default()
    });
    let a = BudgetGuard::new(budget.clone(), "a", None);
    let b = BudgetGuard::new(budget.clone(), "b", None);
    let c = BudgetGuard::new(budget.clone(), "c", None);
    a.before_call(PlannedCall::images(1)).await.unwrap();
    b.before_call(PlannedCall::images(1)).await.unwrap();
    let h = c.before_call(PlannedCall::images(1)).await.unwrap_err();
    assert!(h.message.contains("--max-cost"), "{h}");
}

#[test]
fn a_cost_cap_refuses_a_model_without_a_price() {
    let limits = Limits {
        max_cost: Some(5.0),
        ..Limits::default()
    };
    let e = Budget::new(
        limits.clone(),
        PriceTable::default(),
        "gpt-4o-mini",
        "my-flux at http://gpu:8000",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("\"my-flux\""), "{e}");
    assert!(e.contains("--prices") && e.contains("per_image"), "{e}");
    // Without a cost cap an unpriced model is fine.
    assert!(Budget::new(Limits::default(), PriceTable::default(), "x", "y").is_ok());
}

#[test]
fn every_built_in_backend_default_model_has_a_price() {
    let t = PriceTable::default();
    for model in [
        "gpt-image-1 at https://api.openai.com/v1",
        "gemini-2.5-flash-image at https://generativelanguage.googleapis.com/v1beta",
        "google/gemini-2.5-flash-image at https://openrouter.ai/api/v1",
        "ComfyUI at http://127.0.0.1:8188/",
        "gpt-4o-mini at https://api.openai.com/v1",
    ] {
        assert!(t.get(model).is_some(), "{model} has no price");
    }
}

#[test]
fn price_overrides_replace_estimates() {
    let dir = std::env::temp_dir().join(format!("iat2i-prices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("prices.toml");
    std::fs::write(&f, "[models.\"gpt-image-1\"]\nper_image = 0.5\n").unwrap();
    let t = PriceTable::load_overrides(&f).unwrap();
    let p = t.of("gpt-image-1 at https://api.openai.com/v1");
    assert_eq!(p.per_image, 0.5);
    assert!(!p.estimate);
    assert!(t.of("gpt-4o-mini").estimate);
    std::fs::write(&f, "models = 3").unwrap();
    assert!(PriceTable::load_overrides(&f).is_err());
}

#[tokio::test]
async fn calls_admitted_together_are_each_settled_in_the_ledger() {
    // One selection per entity: two Select calls are admitted before either ends.
    let dir = tempfile::tempdir().unwrap();
    let journal =
        Arc::new(crate::batch::Journal::open(&dir.path().join("journal.sqlite")).unwrap());
    let ledger = Arc::new(Ledger::new(journal));
    let budget = budget(Limits::default());
    let g = BudgetGuard::new(budget, "job", None).with_ledger(ledger.clone());
    g.before_call(PlannedCall::chat(PaidCall::Select))
        .await
        .unwrap();
    g.before_call(PlannedCall::chat(PaidCall::Select))
        .await
        .unwrap();
    assert_eq!(ledger.totals().unwrap().in_flight.calls, 2);
    g.after_call(PaidCall::Select, &CallUsage::default()).await;
    g.after_call(PaidCall::Select, &CallUsage::default()).await;
    let totals = ledger.totals().unwrap();
    assert_eq!(totals.in_flight.calls, 0, "both settled: {totals:?}");
    assert_eq!(totals.billed.calls, 2);
    assert_eq!(totals.interrupted.calls, 0);
}
