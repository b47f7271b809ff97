//! The ScaledObjects shipped in `deploy/keda/` carry exactly the settings the simulator
//! benchmarks as "recommended" (`celery_scaler::simulate::recommended`): the evidence in
//! `docs/benchmarks/scaling.md` is about what users deploy, and changing one side without the
//! other fails here.

use std::path::Path;

use celery_scaler::simulate::recommended::{behavior, COOLDOWN_PERIOD, POLLING_INTERVAL};
use celery_scaler::simulate::scenario::{RateKind, Rules, Select};

fn load(path: &Path) -> config::Config {
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Yaml))
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn number(c: &config::Config, key: &str) -> f64 {
    c.get_float(key).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn check_rules(c: &config::Config, dir: &str, want: &Rules) {
    let base = format!("spec.advanced.horizontalPodAutoscalerConfig.behavior.{dir}");
    assert_eq!(
        Some(number(c, &format!("{base}.stabilizationWindowSeconds"))),
        want.stabilization_window,
        "{dir} window"
    );
    let select = c
        .get_string(&format!("{base}.selectPolicy"))
        .unwrap_or_else(|e| panic!("{dir} selectPolicy: {e}"));
    assert_eq!(
        Some(select.as_str()),
        want.select_policy.map(|s| match s {
            Select::Max => "Max",
            Select::Min => "Min",
            Select::Disabled => "Disabled",
        }),
        "{dir} selectPolicy"
    );
    let policies = c
        .get_array(&format!("{base}.policies"))
        .unwrap_or_else(|e| panic!("{dir} policies: {e}"));
    let want = want.policies.clone().unwrap_or_default();
    assert_eq!(policies.len(), want.len(), "{dir} policies");
    for (got, want) in policies.into_iter().zip(want) {
        let t = got.into_table().unwrap_or_else(|e| panic!("{dir}: {e}"));
        let field = |k: &str| t.get(k).cloned().unwrap_or_else(|| panic!("{dir}: no {k}"));
        let kind = field("type").into_string().unwrap_or_default();
        let value = field("value").into_float().unwrap_or(f64::NAN);
        let period = field("periodSeconds").into_float().unwrap_or(f64::NAN);
        let want_kind = match want.kind {
            RateKind::Pods => "Pods",
            RateKind::Percent => "Percent",
        };
        assert_eq!(
            (kind.as_str(), value, period),
            (want_kind, want.value, want.period)
        );
    }
}

#[test]
fn shipped_scaledobjects_carry_the_benchmarked_settings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/keda");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !name.starts_with("scaledobject") {
            continue;
        }
        let c = load(&path);
        assert_eq!(
            number(&c, "spec.pollingInterval"),
            POLLING_INTERVAL,
            "{name}"
        );
        assert_eq!(number(&c, "spec.cooldownPeriod"), COOLDOWN_PERIOD, "{name}");
        let b = behavior();
        check_rules(
            &c,
            "scaleUp",
            b.scale_up.as_ref().unwrap_or(&Rules::default()),
        );
        check_rules(
            &c,
            "scaleDown",
            b.scale_down.as_ref().unwrap_or(&Rules::default()),
        );
        seen += 1;
    }
    assert!(
        seen >= 2,
        "expected the shipped ScaledObjects in {}",
        dir.display()
    );
}
