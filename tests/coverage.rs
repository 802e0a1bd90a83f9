//! Coverage from the trait: every method of `trait Device` (read from its
//! source, so a new method is seen the moment it is written) must be run on
//! the GPU against the CPU (a case of `wgtrain::check` or a property test in
//! tests/reference.rs) and be checked on the CPU against something simpler
//! (a hand-worked example in tests/cpu_reference.rs or the naive reference
//! in tests/reference.rs).

/// The method names of `pub trait Device`, in order.
fn device_methods() -> Vec<String> {
    let src = include_str!("../src/device/mod.rs");
    let start = src.find("pub trait Device {").expect("the trait");
    let mut depth = 0usize;
    let mut end = start;
    for (i, ch) in src[start..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i;
                    break;
                }
            }
            _ => {}
        }
    }
    src[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("fn "))
        .map(|l| l.split(['(', '<']).next().unwrap().to_string())
        .collect()
}

/// Methods that describe the device rather than compute, with where each
/// is checked: neither has a CPU-vs-GPU case.
const PROPERTIES: &[(&str, &str)] = &[
    ("name", "a label: printed by `wgtrain devices`"),
    (
        "max_tensor_bytes",
        "a limit: tests/gpu_device.rs makes a tensor of it and fails one above it; tests/streaming.rs trains on data beyond it",
    ),
    (
        "precision",
        "a setting: tests/cpu_reference.rs reads it back; with_precision is checked by hand and CPU-vs-GPU",
    ),
];

/// Methods whose coverage is another method's, with the reason.
const COVERED_BY: &[(&str, &str, &str)] = &[
    ("add", "binary", "a provided method that calls binary(Add)"),
    ("sub", "binary", "a provided method that calls binary(Sub)"),
    ("mul", "binary", "a provided method that calls binary(Mul)"),
    ("zeros", "full", "a provided method that calls full(0)"),
];

#[test]
fn every_device_method_is_cross_checked_and_checked_by_hand() {
    // Every file of src/check/ (the case families), read when the test runs
    // so a new family file is seen without editing this list.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/check");
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .expect("src/check")
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    texts.push(include_str!("reference.rs").to_string());
    let gpu_checks: Vec<&str> = texts.iter().map(String::as_str).collect();
    let cpu_checks = [
        include_str!("cpu_reference.rs"),
        include_str!("reference.rs"),
    ];
    let called = |texts: &[&str], m: &str| {
        let call = format!(".{m}(");
        texts.iter().any(|t| t.contains(&call))
    };
    let methods = device_methods();
    assert!(methods.len() > 40, "parsed only {methods:?}");
    let mut missing = Vec::new();
    for m in &methods {
        let target = COVERED_BY
            .iter()
            .find(|(name, _, _)| name == m)
            .map_or(m.as_str(), |(_, by, _)| by);
        if PROPERTIES.iter().any(|(p, _)| p == m) {
            continue;
        }
        if !called(&gpu_checks, target) {
            missing.push(format!("{m}: no CPU-vs-GPU case"));
        }
        if !called(&cpu_checks, target) {
            missing.push(format!(
                "{m}: no hand-worked or naive-reference check of the CPU"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "Device methods without checks:\n{}",
        missing.join("\n")
    );
}
