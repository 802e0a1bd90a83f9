//! The `wgtrain` program end to end: every command on small data, every bad
//! input a user can cause (one clear line, non-zero exit, no panic, nothing
//! half-written), resume equivalence, and the train → eval → predict round
//! trip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Runs wgtrain in `dir` (the repository's data/ is reachable as `data`).
fn wgtrain(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .current_dir(dir)
        // Mesa's loader complains on stderr without it.
        .env("XDG_RUNTIME_DIR", dir)
        .output()
        .expect("wgtrain runs")
}

/// Starts wgtrain in `dir` in the background (stdout discarded; stderr
/// kept when `keep_stderr`), for tests that act while it runs.
fn spawn(dir: &Path, args: &[&str], keep_stderr: bool) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", dir)
        .stdout(std::process::Stdio::null())
        .stderr(if keep_stderr {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .expect("wgtrain starts")
}

/// Polls `ready` until it holds, failing with `what` after `seconds`.
fn wait_until(what: &str, seconds: u64, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Data rows of a run's metrics.csv so far (epochs finished).
fn epochs_logged(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.csv"))
        .map_or(0, |t| t.lines().count().saturating_sub(1))
}

fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    std::os::unix::fs::symlink(data, dir.path().join("data")).unwrap();
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// The last stdout line as JSON.
fn json(o: &Output) -> Value {
    let out = stdout(o);
    let last = out.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

/// A failure with one `error:` line that contains every piece of `expect`.
fn fails_with(o: Output, expect: &[&str]) {
    assert!(
        !o.status.success(),
        "expected failure, got success:\n{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "panic:\n{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    for e in expect {
        assert!(lines[0].contains(e), "'{e}' not in: {}", lines[0]);
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn train_writes_a_run_directory_and_json() {
    let w = workdir();
    let o = ok(wgtrain(
        w.path(),
        &[
            "train", "logistic", "--epochs", "5", "--device", "cpu", "--out", "r", "--json",
        ],
    ));
    let j = json(&o);
    assert_eq!(j["command"], "train");
    assert_eq!(j["model"], "logistic");
    assert_eq!(j["device"], "cpu");
    assert!(j["adapter"].is_null());
    assert_eq!(j["params"], 31);
    assert_eq!(j["epochs"], 5);
    assert!(j["test"]["accuracy"].as_f64().unwrap() > 0.8);
    assert!(j["test"].get("r2").is_none());
    // The confusion matrix and per-class scores travel in the JSON.
    let cm = j["test"]["confusion"].as_array().unwrap();
    let counted: u64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, j["test"]["samples"].as_u64().unwrap());
    assert_eq!(j["test"]["per_class"].as_array().unwrap().len(), 2);
    assert!(j["test"]["macro_f1"].as_f64().unwrap() > 0.8);
    assert_eq!(
        files(&w.path().join("r")),
        [
            ".wgtrain.lock",
            "config.toml",
            "last.safetensors",
            "loss.svg",
            "metric.svg",
            "metrics.csv",
            "model.safetensors",
            "summary.json"
        ]
    );
    let metrics = std::fs::read_to_string(w.path().join("r/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 6);
    assert!(
        metrics.starts_with("epoch,train_loss,val_loss,val_accuracy,lr,seconds,samples_per_sec")
    );
    let svg = std::fs::read_to_string(w.path().join("r/loss.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("validation"));
    let metric = std::fs::read_to_string(w.path().join("r/metric.svg")).unwrap();
    assert!(metric.contains("accuracy"));
}

#[test]
fn every_model_trains_from_the_command_line() {
    // Short runs with targets far above what a model that learned nothing
    // scores: the majority class of digits is about 10 %, the mean predictor
    // has R² 0, and the unigram entropy of the novel is 4.49 bits/char.
    let w = workdir();
    for (model, extra) in [
        ("linear", vec!["--epochs", "50"]),
        ("mlp", vec!["--epochs", "5", "--hidden", "32"]),
        (
            "cnn",
            vec![
                "--epochs",
                "6",
                "--channels",
                "4,8",
                "--max-train-samples",
                "1000",
                "--lr",
                "1e-2",
            ],
        ),
        (
            "rnn",
            vec![
                "--epochs",
                "4",
                "--hidden",
                "64",
                "--max-train-samples",
                "3000",
                "--lr",
                "1e-2",
            ],
        ),
    ] {
        let mut args = vec!["train", model, "--device", "cpu", "--json", "--out", model];
        args.extend(extra);
        let j = json(&ok(wgtrain(w.path(), &args)));
        assert_eq!(j["model"], model);
        let test = &j["test"];
        match model {
            "linear" => {
                assert!(test["r2"].as_f64().unwrap() > 0.3 && test["rmse"].as_f64().is_some())
            }
            "rnn" => assert!(test["bits_per_char"].as_f64().unwrap() < 3.6, "{test}"),
            _ => assert!(test["accuracy"].as_f64().unwrap() > 0.8, "{model}: {test}"),
        }
    }
}

#[test]
fn round_trip_train_eval_predict_on_the_gpu() {
    let Some(_) = common::gpu() else { return };
    let w = workdir();
    let j = json(&ok(wgtrain(
        w.path(),
        &[
            "train", "mlp", "--epochs", "2", "--device", "gpu", "--out", "m", "--json",
        ],
    )));
    assert_eq!(j["device"], "gpu");
    assert!(j["adapter"].as_str().is_some());
    let trained = j["test"]["accuracy"].as_f64().unwrap();
    // eval recreates the same test split from the seed saved in the model.
    let e = json(&ok(wgtrain(
        w.path(),
        &["eval", "--model", "m", "--device", "gpu", "--json"],
    )));
    assert_eq!(e["test"]["accuracy"].as_f64().unwrap(), trained);
    let c = json(&ok(wgtrain(
        w.path(),
        &[
            "eval",
            "--model",
            "m/model.safetensors",
            "--device",
            "cpu",
            "--json",
        ],
    )));
    assert!(
        (c["test"]["accuracy"].as_f64().unwrap() - trained).abs() < 0.01,
        "cpu and gpu evaluate alike"
    );
    // predict over every digit: the predicted classes agree with the labels
    // about as often as the test accuracy says.
    let o = ok(wgtrain(
        w.path(),
        &[
            "predict",
            "--model",
            "m",
            "--input",
            "data/digits/digits-images-idx3-ubyte",
            "--output",
            "p.csv",
        ],
    ));
    assert!(stdout(&o).is_empty());
    let preds = std::fs::read_to_string(w.path().join("p.csv")).unwrap();
    let labels =
        wgtrain::data::idx::read_idx(&w.path().join("data/digits/digits-labels-idx1-ubyte"))
            .unwrap();
    let mut lines = preds.lines();
    assert!(lines.next().unwrap().starts_with("prediction,p_0,"));
    let agree = lines
        .zip(&labels.data)
        .filter(|(l, &y)| l.split(',').next().unwrap() == y.to_string())
        .count();
    assert!(agree as f64 / 1797.0 > trained - 0.05, "{agree} of 1797");
}

#[test]
fn predict_csv_with_or_without_the_target_column() {
    let w = workdir();
    ok(wgtrain(
        w.path(),
        &[
            "train", "linear", "--epochs", "100", "--device", "cpu", "--out", "l", "--quiet",
        ],
    ));
    std::fs::write(
        w.path().join("rows.csv"),
        "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6\n59,2,32.1,101,157,93.2,38,4,4.8598,87\n",
    )
    .unwrap();
    let o = ok(wgtrain(
        w.path(),
        &[
            "predict", "--model", "l", "--input", "rows.csv", "--device", "cpu",
        ],
    ));
    let out = stdout(&o);
    let first: f64 = out.lines().nth(1).unwrap().parse().unwrap();
    let all = ok(wgtrain(
        w.path(),
        &[
            "predict",
            "--model",
            "l",
            "--input",
            "data/tabular/diabetes.csv",
            "--device",
            "cpu",
        ],
    ));
    let preds: Vec<f64> = stdout(&all)
        .lines()
        .skip(1)
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(preds.len(), 442);
    // The same row alone or among all (the target column is ignored).
    assert!((preds[0] - first).abs() < 1e-3, "{first} vs {}", preds[0]);
    // In target units, and far better than the mean: R² over the whole table
    // (least squares reaches about 0.52 in sample; the mean 0).
    let table = std::fs::read_to_string(w.path().join("data/tabular/diabetes.csv")).unwrap();
    let y: Vec<f64> = table
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let ss_res: f64 = preds.iter().zip(&y).map(|(p, t)| (p - t).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|t| (t - mean).powi(2)).sum();
    assert!(1.0 - ss_res / ss_tot > 0.4, "R² {}", 1.0 - ss_res / ss_tot);
}

#[test]
fn resume_ends_where_an_uninterrupted_run_would() {
    let w = workdir();
    let args = [
        "train", "mlp", "--hidden", "32", "--epochs", "4", "--device", "cpu", "--json", "--quiet",
    ];
    let full = json(&ok(wgtrain(
        w.path(),
        &[&args[..], &["--out", "full"]].concat(),
    )));
    ok(wgtrain(
        w.path(),
        &[&args[..], &["--out", "half", "--stop-after-epochs", "2"]].concat(),
    ));
    let resumed = json(&ok(wgtrain(
        w.path(),
        &[
            "train", "mlp", "--resume", "half", "--device", "cpu", "--json", "--quiet",
        ],
    )));
    assert_eq!(resumed["epochs"], 4);
    assert_eq!(full["train_loss"], resumed["train_loss"]);
    assert_eq!(full["test"], resumed["test"]);
    let metrics = std::fs::read_to_string(w.path().join("half/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 5);
}

#[test]
fn resume_with_dropout_draws_the_same_masks() {
    // The masks come from the optimizer's step count, which the checkpoint
    // keeps: stopping and resuming must not change a single one.
    let w = workdir();
    let run = |layers: &str, out: &str, extra: &[&str]| {
        let args = [
            "train", "--layers", layers, "--data", "digits", "--epochs", "3",
        ];
        let common = ["--device", "cpu", "--json", "--quiet", "--out", out];
        json(&ok(wgtrain(
            w.path(),
            &[&args[..], &common, extra].concat(),
        )))
    };
    let layers = "flatten,dense:32,relu,dropout:0.5";
    let full = run(layers, "full", &[]);
    run(layers, "half", &["--stop-after-epochs", "1"]);
    let resumed = json(&ok(wgtrain(
        w.path(),
        &[
            "train", "--resume", "half", "--device", "cpu", "--json", "--quiet",
        ],
    )));
    assert_eq!(full["train_loss"], resumed["train_loss"]);
    assert_eq!(full["test"], resumed["test"]);
    // And the masks matter: without dropout the run is another one.
    let none = run("flatten,dense:32,relu,dropout:0", "none", &[]);
    assert_ne!(full["train_loss"], none["train_loss"]);
    assert_eq!(full["layers"], "flatten,dense:32,relu,dropout:0.5,dense:10");
}

#[test]
fn resume_with_batch_norm_keeps_the_running_statistics() {
    // Evaluation reads the running averages, which only the checkpoint
    // carries across a stop: a resumed run must end bit for bit where an
    // uninterrupted one does.
    let w = workdir();
    let layers = "conv2d:4:3,batchnorm,relu,maxpool:2,flatten,dense:16,batchnorm,relu";
    let run = |out: &str, extra: &[&str]| {
        let args = [
            "train", "--layers", layers, "--data", "digits", "--epochs", "3", "--lr", "0.01",
        ];
        let common = ["--device", "cpu", "--json", "--quiet", "--out", out];
        json(&ok(wgtrain(
            w.path(),
            &[&args[..], &common, extra].concat(),
        )))
    };
    let full = run("full", &[]);
    run("half", &["--stop-after-epochs", "1"]);
    let resumed = json(&ok(wgtrain(
        w.path(),
        &[
            "train", "--resume", "half", "--device", "cpu", "--json", "--quiet",
        ],
    )));
    assert_eq!(full["train_loss"], resumed["train_loss"]);
    assert_eq!(full["val_loss"], resumed["val_loss"]);
    assert_eq!(full["test"], resumed["test"]);
    // The statistics are in the model file, beside the weights.
    let names: Vec<String> = tensors(&w.path().join("full/model.safetensors"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert!(
        names.contains(&"layers.1.running_var".to_string()),
        "{names:?}"
    );
    // It learned (95.8 % when written; the same model without batch
    // normalisation reached 91.9 %).
    let acc = full["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "test accuracy {acc}");
}

#[test]
fn bench_compares_with_a_baseline() {
    let w = workdir();
    let args = [
        "bench",
        "--device",
        "cpu",
        "--workloads",
        "K4,T1",
        "--quick",
    ];
    let o = ok(wgtrain(w.path(), &[&args[..], &["--json"]].concat()));
    let lines = stdout(&o);
    let records: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line a record"))
        .collect();
    let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["K4", "T1"]);
    std::fs::write(w.path().join("base.jsonl"), &lines).unwrap();
    // The same machine again: a verdict for each workload.
    let o = ok(wgtrain(
        w.path(),
        &[&args[..], &["--baseline", "base.jsonl"]].concat(),
    ));
    let out = stdout(&o);
    let table = out
        .split("against the baseline")
        .nth(1)
        .unwrap_or_else(|| panic!("no comparison table:\n{out}"));
    for id in ids {
        let row = table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no comparison for {id}:\n{table}"));
        assert!(
            ["faster", "SLOWER", "within noise"]
                .iter()
                .any(|v| row.ends_with(v)),
            "{row}"
        );
    }
    // A baseline 1000× faster than this machine: every workload is slower
    // beyond noise, which --fail-on-regression turns into a failure.
    let fast: String = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for k in ["median", "min", "max"] {
                r[k] = serde_json::json!(r[k].as_f64().unwrap() * 1000.0);
            }
            format!("{r}\n")
        })
        .collect();
    std::fs::write(w.path().join("fast.jsonl"), fast).unwrap();
    let o = ok(wgtrain(
        w.path(),
        &[&args[..], &["--baseline", "fast.jsonl"]].concat(),
    ));
    assert_eq!(stdout(&o).matches("SLOWER").count(), 2, "{}", stdout(&o));
    fails_with(
        wgtrain(
            w.path(),
            &[
                &args[..],
                &["--baseline", "fast.jsonl", "--fail-on-regression"],
            ]
            .concat(),
        ),
        &["slower than the baseline", "K4", "T1"],
    );
    // A full run's baseline is not compared with a --quick run.
    let full: String = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["reps"] = serde_json::json!(10);
            format!("{r}\n")
        })
        .collect();
    std::fs::write(w.path().join("full.jsonl"), full).unwrap();
    fails_with(
        wgtrain(
            w.path(),
            &[&args[..], &["--baseline", "full.jsonl"]].concat(),
        ),
        &["nothing to compare"],
    );
    // A malformed baseline is refused before anything is measured.
    std::fs::write(
        w.path().join("bad.jsonl"),
        format!("{}\n{{oops\n", records[0]),
    )
    .unwrap();
    fails_with(
        wgtrain(
            w.path(),
            &[&args[..], &["--baseline", "bad.jsonl"]].concat(),
        ),
        &["bad.jsonl", "line 2"],
    );
}

#[test]
fn sample_generates_from_a_prompt() {
    let w = workdir();
    let text = include_str!("../data/text/pride_and_prejudice.txt");
    std::fs::write(w.path().join("t.txt"), &text[..20_000]).unwrap();
    ok(wgtrain(
        w.path(),
        &[
            "train", "rnn", "--data", "t.txt", "--epochs", "1", "--hidden", "16", "--device",
            "cpu", "--out", "r", "--quiet",
        ],
    ));
    let o = ok(wgtrain(
        w.path(),
        &[
            "sample", "--model", "r", "--prompt", "It is", "--length", "40", "--device", "cpu",
        ],
    ));
    let s = stdout(&o);
    assert!(s.starts_with("It is"));
    assert_eq!(s.trim_end_matches('\n').chars().count(), 45);
    fails_with(
        wgtrain(
            w.path(),
            &["sample", "--model", "r", "--prompt", "€", "--device", "cpu"],
        ),
        &["'€'", "vocabulary"],
    );
}

#[test]
fn devices_and_check() {
    let Some(_) = common::gpu() else { return };
    let w = workdir();
    let o = ok(wgtrain(w.path(), &["devices"]));
    assert!(stdout(&o).contains("* 0"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("the CPU device's matrix products use "),
        "{}",
        stdout(&o)
    );
    let o = ok(wgtrain(w.path(), &["check", "--filter", "softmax"]));
    let out = stdout(&o);
    assert!(
        out.contains("max abs err") && out.contains("checks passed"),
        "{out}"
    );
    assert!(!out.contains("FAIL"));
}

#[test]
fn bad_data_files() {
    let w = workdir();
    let d = w.path();
    let cpu = ["--device", "cpu", "--epochs", "1"];
    let train = |model: &str, data: &str| {
        wgtrain(d, &[&["train", model, "--data", data][..], &cpu].concat())
    };
    fails_with(
        train("mlp", "missing.csv"),
        &["missing.csv", "no such file"],
    );
    fails_with(
        train("mlp", "nope"),
        &["nope", "digits, iris, breast-cancer, diabetes, austen"],
    );
    std::fs::create_dir(d.join("idx")).unwrap();
    std::fs::write(
        d.join("idx/train-images-idx3-ubyte"),
        [7u8, 7, 8, 3, 0, 0, 0, 1],
    )
    .unwrap();
    std::fs::write(
        d.join("idx/train-labels-idx1-ubyte"),
        [0u8, 0, 8, 1, 0, 0, 0, 1, 3],
    )
    .unwrap();
    fails_with(
        train("mlp", "idx"),
        &["train-images-idx3-ubyte", "wrong magic number"],
    );
    std::fs::write(
        d.join("idx/train-images-idx3-ubyte"),
        [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1],
    )
    .unwrap();
    fails_with(
        train("mlp", "idx"),
        &["train-images-idx3-ubyte", "truncated"],
    );
    std::fs::write(
        d.join("idx/train-images-idx3-ubyte"),
        [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2],
    )
    .unwrap();
    fails_with(train("mlp", "idx"), &["2 images but labels of shape [1]"]);
    // One IDX file, or a gzip, is not a text corpus.
    fails_with(
        train("mlp", "idx/train-images-idx3-ubyte"),
        &["train-images-idx3-ubyte", "is an IDX (MNIST-format) file"],
    );
    std::fs::write(d.join("same.csv"), "a,a,target\n1,2,0\n3,4,1\n").unwrap();
    fails_with(
        train("logistic", "same.csv"),
        &["same.csv", "the header names column 'a' twice"],
    );
    std::fs::write(d.join("bad.csv"), "a,b,target\n1,2,0\n3,oops,1\n").unwrap();
    fails_with(
        train("mlp", "bad.csv"),
        &["bad.csv", "line 3, column 2", "'oops' is not a number"],
    );
    std::fs::write(d.join("ragged.csv"), "a,b,target\n1,2,0\n3,1\n").unwrap();
    fails_with(
        train("mlp", "ragged.csv"),
        &["ragged.csv", "line 3: 2 cells, expected 3"],
    );
    std::fs::write(d.join("empty.csv"), "").unwrap();
    fails_with(train("mlp", "empty.csv"), &["empty.csv", "empty file"]);
    std::fs::write(d.join("label.csv"), "a,target\n1,0\n2,1.5\n").unwrap();
    fails_with(
        train("logistic", "label.csv"),
        &["label.csv", "class label 1.5"],
    );
    std::fs::write(d.join("latin1.txt"), [b'c', b'a', b'f', 0xe9]).unwrap();
    fails_with(train("rnn", "latin1.txt"), &["latin1.txt", "not UTF-8"]);
    std::fs::write(d.join("short.txt"), "too short").unwrap();
    fails_with(
        train("rnn", "short.txt"),
        &["short.txt", "too short for --seq-len 32"],
    );
    // Images for predict: the model's own height and width, not merely as
    // many pixels.
    ok(wgtrain(
        d,
        &[
            "train", "cnn", "--data", "digits", "--device", "cpu", "--epochs", "1", "--out",
            "cnn8", "--quiet",
        ],
    ));
    let idx = |name: &str, dims: [u32; 3]| {
        let mut bytes = vec![0u8, 0, 8, 3];
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        bytes.resize(bytes.len() + dims.iter().product::<u32>() as usize, 7);
        std::fs::write(d.join(name), bytes).unwrap();
    };
    idx("wide-idx3-ubyte", [2, 4, 16]);
    idx("square-idx3-ubyte", [2, 8, 8]);
    let predict = |input: &str| {
        wgtrain(
            d,
            &[
                "predict", "--model", "cnn8", "--input", input, "--device", "cpu",
            ],
        )
    };
    fails_with(
        predict("wide-idx3-ubyte"),
        &["images of shape [4, 16] do not fit this model, which takes [1, 8, 8]"],
    );
    assert_eq!(stdout(&ok(predict("square-idx3-ubyte"))).lines().count(), 3);
    std::fs::remove_dir_all(d.join("cnn8")).unwrap();
    // Nothing half-written: failed runs leave no checkpoint behind.
    assert!(
        !d.join("runs").exists()
            || files(&d.join("runs"))
                .iter()
                .all(|r| files(&d.join("runs").join(r)).is_empty())
    );
}

#[test]
fn bad_settings() {
    let w = workdir();
    let d = w.path();
    let o = wgtrain(d, &["train", "transformer"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(
        "unknown model 'transformer' (presets: linear, logistic, mlp, cnn, rnn, lstm, gru; or give --layers)"
    ));
    let o = wgtrain(d, &["train", "mlp", "--batch-size", "0"]);
    assert!(!o.status.success() && stderr(&o).contains("at least 1"));
    let o = wgtrain(d, &["train", "mlp", "--stop-after-epochs", "0"]);
    assert!(!o.status.success() && stderr(&o).contains("0 is not in 1.."));
    fails_with(
        wgtrain(
            d,
            &[
                "train",
                "mlp",
                "--data",
                "iris",
                "--max-train-samples",
                "0",
                "--device",
                "cpu",
            ],
        ),
        &["--max-train-samples must be at least 1"],
    );
    fails_with(
        wgtrain(d, &["bench", "--workloads", ",", "--device", "cpu"]),
        &["--workloads names no workload"],
    );
    let o = wgtrain(d, &["train", "mlp", "--lr", "NaN"]);
    assert!(!o.status.success() && stderr(&o).contains("not a finite number"));
    fails_with(
        wgtrain(d, &["train", "mlp", "--lr", "-0.1", "--device", "cpu"]),
        &["learning rate must be a positive"],
    );
    fails_with(
        wgtrain(
            d,
            &[
                "train",
                "logistic",
                "--data",
                "iris",
                "--batch-size",
                "1000",
                "--device",
                "cpu",
            ],
        ),
        &["--batch-size 1000 is larger than the training split (105 samples)"],
    );
    fails_with(
        wgtrain(d, &["train", "mlp", "--data", "austen", "--device", "cpu"]),
        &["austen is text"],
    );
    // A misspelt kernel switch is refused before any adapter is looked for,
    // and `--device auto` does not take it for a missing GPU.
    for (var, value, expect) in [
        (
            "WGTRAIN_CONV",
            "bcats",
            "WGTRAIN_CONV=bcats: expected bcast, plain",
        ),
        (
            "WGTRAIN_MATMUL",
            "fast",
            "WGTRAIN_MATMUL=fast: expected tiled, blocked",
        ),
        ("WGTRAIN_TUNE", "2", "WGTRAIN_TUNE=2: expected 1, 0"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args(["train", "linear", "--epochs", "1"])
            .current_dir(d)
            .env("XDG_RUNTIME_DIR", d)
            .env(var, value)
            .output()
            .expect("wgtrain runs");
        fails_with(o, &[expect]);
    }
    assert!(!d.join("runs").exists(), "a refused run left a directory");
}

/// A checkpoint's bytes with its `wgtrain.resume` metadata edited by `f`
/// (safetensors: an 8-byte header length, the JSON header, the data).
fn edit_resume_meta(bytes: &[u8], f: impl Fn(&mut Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = &mut header["__metadata__"]["wgtrain.resume"];
    let mut resume: Value = serde_json::from_str(meta.as_str().unwrap()).unwrap();
    f(&mut resume);
    *meta = resume.to_string().into();
    let mut text = header.to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text.as_bytes());
    out.extend(&bytes[8 + n..]);
    out
}

#[test]
fn checkpoints_of_the_wrong_kind_or_shape() {
    let w = workdir();
    let d = w.path();
    ok(wgtrain(
        d,
        &[
            "train", "logistic", "--data", "iris", "--epochs", "2", "--device", "cpu", "--out",
            "iris", "--quiet",
        ],
    ));
    fails_with(
        wgtrain(d, &["train", "mlp", "--resume", "iris", "--device", "cpu"]),
        &["holds a logistic run, not mlp"],
    );
    fails_with(
        wgtrain(
            d,
            &[
                "train", "--resume", "iris", "--lr", "0.5", "--seed", "2", "--device", "cpu",
            ],
        ),
        &["--lr, --seed would change them", "only --epochs"],
    );
    fails_with(
        wgtrain(
            d,
            &[
                "eval",
                "--model",
                "iris",
                "--data",
                "breast-cancer",
                "--device",
                "cpu",
            ],
        ),
        &[
            "breast-cancer",
            "lacks the model's feature column(s) sepal_length_cm",
        ],
    );
    fails_with(
        wgtrain(
            d,
            &[
                "predict",
                "--model",
                "iris",
                "--input",
                "data/tabular/breast_cancer.csv",
                "--device",
                "cpu",
            ],
        ),
        &[
            "breast_cancer.csv",
            "lacks the model's feature columns sepal_length_cm",
        ],
    );
    std::fs::write(d.join("junk.safetensors"), b"not a checkpoint").unwrap();
    fails_with(
        wgtrain(
            d,
            &["eval", "--model", "junk.safetensors", "--device", "cpu"],
        ),
        &["junk.safetensors", "not a safetensors file"],
    );
    fails_with(
        wgtrain(d, &["eval", "--model", "nowhere", "--device", "cpu"]),
        &["nowhere", "no such model file"],
    );
    fails_with(
        wgtrain(
            d,
            &["train", "mlp", "--resume", "nowhere", "--device", "cpu"],
        ),
        &["nowhere: no such run directory"],
    );
    fails_with(
        wgtrain(
            d,
            &[
                "train", "--resume", "iris", "--epochs", "1", "--device", "cpu",
            ],
        ),
        &["--epochs 1 is fewer than the 2 this run has done"],
    );
    // Outputs never replace a command's own input or a run's files.
    for output in ["iris/model.safetensors", "iris/last.safetensors"] {
        fails_with(
            wgtrain(
                d,
                &[
                    "export", "--model", "iris", "--format", "onnx", "--output", output,
                ],
            ),
            &[output],
        );
    }
    // A resume state that lies about where the run stood: refused, not
    // trained from (a step past the epoch's end skipped the epoch; an
    // optimizer step count near u64::MAX wrapped Adam's to 0).
    let last = d.join("iris/last.safetensors");
    let original = std::fs::read(&last).unwrap();
    for (key, value, says) in [
        (
            "step",
            1_000_000_000u64,
            "inconsistent training state: step 1000000000",
        ),
        (
            "optimizer_steps",
            u64::MAX,
            "optimizer steps after 2 epochs",
        ),
    ] {
        std::fs::write(
            &last,
            edit_resume_meta(&original, |m| {
                let at = if key == "step" {
                    &mut m["state"]
                } else {
                    &mut *m
                };
                at[key] = value.into();
            }),
        )
        .unwrap();
        fails_with(
            wgtrain(
                d,
                &[
                    "train", "--resume", "iris", "--epochs", "3", "--device", "cpu",
                ],
            ),
            &[says],
        );
    }
    std::fs::write(&last, &original).unwrap();
    // Data that changed after training: its recreated splits are not the
    // run's, so eval's default split and --resume refuse it.
    let iris = std::fs::read_to_string(d.join("data/tabular/iris.csv")).unwrap();
    std::fs::write(d.join("mine.csv"), &iris).unwrap();
    ok(wgtrain(
        d,
        &[
            "train", "logistic", "--data", "mine.csv", "--epochs", "2", "--device", "cpu", "--out",
            "mine", "--quiet",
        ],
    ));
    ok(wgtrain(d, &["eval", "--model", "mine", "--device", "cpu"]));
    let (head, rest) = iris.split_once('\n').unwrap();
    let (first, rest) = rest.split_once('\n').unwrap();
    let edited = format!("{head}\n{rest}{first}\n"); // the first row moved last
    std::fs::write(d.join("mine.csv"), edited).unwrap();
    fails_with(
        wgtrain(d, &["eval", "--model", "mine", "--device", "cpu"]),
        &["mine.csv has changed since the model was trained on it"],
    );
    ok(wgtrain(
        d,
        &[
            "eval", "--model", "mine", "--split", "all", "--device", "cpu",
        ],
    ));
    fails_with(
        wgtrain(
            d,
            &[
                "train", "--resume", "mine", "--epochs", "3", "--device", "cpu",
            ],
        ),
        &["mine.csv has changed since this run began"],
    );
    // A NaN in a parameter is refused at load, by name.
    let path = d.join("iris/model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let (name, first) = header
        .as_object()
        .unwrap()
        .iter()
        .find_map(|(k, v)| Some((k.clone(), v.get("data_offsets")?[0].as_u64()? as usize)))
        .unwrap();
    let at = 8 + header_len + first;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    fails_with(
        wgtrain(d, &["eval", "--model", "iris", "--device", "cpu"]),
        &[&format!("tensor '{name}' holds NaN")],
    );
}

#[test]
fn a_diverging_loss_stops_and_keeps_the_last_good_checkpoint() {
    let w = workdir();
    let d = w.path();
    // Full-batch descent at twice the stable step size: the loss grows
    // geometrically and overflows f32 after some epochs.
    let o = wgtrain(
        d,
        &[
            "train",
            "linear",
            "--lr",
            "2",
            "--optimizer",
            "sgd",
            "--schedule",
            "constant",
            "--epochs",
            "3000",
            "--device",
            "cpu",
            "--out",
            "div",
            "--save-every",
            "0",
        ],
    );
    fails_with(
        o,
        &[
            "loss became",
            "kept in div",
            "the best model (epoch",
            "checkpoints of epoch",
        ],
    );
    let run: PathBuf = d.join("div");
    assert!(files(&run).contains(&"last.safetensors".to_string()));
    assert!(
        !files(&run).iter().any(|f| f.contains(".tmp")),
        "{:?}",
        files(&run)
    );
    // The kept checkpoint loads and holds finite weights.
    let ck = wgtrain::run::checkpoint::load(&run.join("last.safetensors")).unwrap();
    assert!(ck
        .params
        .iter()
        .all(|t| t.values.iter().all(|v| v.is_finite())));
}

#[test]
fn epochs_scale_with_the_data_and_early_stopping_is_on_by_default() {
    let w = workdir();
    // 5,000 rows: about 2.8× the training samples of digits, where the mlp
    // preset's 40 epochs were chosen.
    let mut csv = String::from("a,b,label\n");
    for i in 0..5000 {
        let (a, b) = ((i % 97) as f32 / 97.0, (i % 89) as f32 / 89.0);
        csv += &format!("{a},{b},{}\n", u8::from(a + b > 1.0));
    }
    std::fs::write(w.path().join("big.csv"), csv).unwrap();
    let run = |out: &str, extra: &[&str]| {
        let args = ["train", "mlp", "--hidden", "8", "--device", "cpu", "--json"];
        let o = ok(wgtrain(
            w.path(),
            &[
                &args[..],
                &["--stop-after-epochs", "1", "--out", out],
                extra,
            ]
            .concat(),
        ));
        (json(&o), stdout(&o) + &stderr(&o))
    };
    let expect = |train: f64| (40.0 * (1259.0 / train).sqrt()).round() as u64;
    let (big, said) = run("big", &["--data", "big.csv"]);
    let train = big["samples"]["train"].as_u64().unwrap();
    assert!((3400..=3600).contains(&train), "{big}");
    assert_eq!(big["max_epochs"].as_u64(), Some(expect(train as f64)));
    assert!(big["max_epochs"].as_u64().unwrap() < 30, "{big}");
    assert_eq!(big["patience"], 10);
    assert!(said.contains("(auto: scaled to") && said.contains("early stopping after 10 epochs"));
    // The run's config holds the number it used, so it repeats as it ran.
    let config = std::fs::read_to_string(w.path().join("big/config.toml")).unwrap();
    assert!(
        config.contains(&format!("epochs = {}", expect(train as f64))),
        "{config}"
    );
    // Smaller data: more epochs (iris: 105 training samples).
    let (small, _) = run("small", &["--data", "iris"]);
    assert_eq!(small["samples"]["train"], 105);
    assert_eq!(small["max_epochs"].as_u64(), Some(expect(105.0)));
    // Both chosen by hand.
    let (fixed, said) = run(
        "fixed",
        &["--data", "iris", "--epochs", "7", "--patience", "off"],
    );
    assert_eq!(fixed["max_epochs"], 7);
    assert!(fixed.get("patience").is_none(), "{fixed}");
    assert!(
        said.contains("no early stopping (--patience off)"),
        "{said}"
    );
    // Left to run, the default patience ends the iris run early and keeps
    // a model that is still right on the held-out part.
    let o = ok(wgtrain(
        w.path(),
        &[
            "train", "mlp", "--data", "iris", "--device", "cpu", "--json", "--out", "full",
        ],
    ));
    let full = json(&o);
    assert_eq!(full["ended"], "early_stopped", "{full}");
    assert!(full["epochs"].as_u64() < full["max_epochs"].as_u64());
    assert!(full["test"]["accuracy"].as_f64().unwrap() >= 0.9, "{full}");
    assert!(stderr(&o).contains("early stopping after epoch"));
}

#[test]
fn early_stopping_keeps_the_best_epoch_also_across_resumes() {
    let w = workdir();
    let args = [
        "train",
        "mlp",
        "--hidden",
        "64",
        "--patience",
        "2",
        "--device",
        "cpu",
        "--json",
        "--quiet",
    ];
    let full = json(&ok(wgtrain(
        w.path(),
        &[&args[..], &["--out", "full"]].concat(),
    )));
    let (epochs, best) = (
        full["epochs"].as_u64().unwrap(),
        full["best_epoch"].as_u64().unwrap(),
    );
    assert!(
        epochs < 40,
        "patience 2 should stop before the 40 default epochs"
    );
    // Patience counts from the last epoch that improved the metric or the
    // loss; the kept epoch is the best by metric.
    assert!(epochs - best >= 2, "{full}");
    // The same run in chunks of 2 epochs ends at the same epoch, with the
    // best epoch's weights restored.
    ok(wgtrain(
        w.path(),
        &[&args[..], &["--out", "chunks", "--stop-after-epochs", "2"]].concat(),
    ));
    let mut last = Value::Null;
    for _ in 0..20 {
        last = json(&ok(wgtrain(
            w.path(),
            &[
                "train",
                "mlp",
                "--resume",
                "chunks",
                "--device",
                "cpu",
                "--json",
                "--quiet",
                "--stop-after-epochs",
                "2",
            ],
        )));
        if last["epochs"] == full["epochs"] {
            break;
        }
    }
    assert_eq!(last["epochs"], full["epochs"]);
    assert_eq!(last["best_epoch"], full["best_epoch"]);
    assert_eq!(last["test"], full["test"]);
}

// ---- your own model: --layers, --config, --print-config --------------------

/// The tensors of a checkpoint, by name.
fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let ck = wgtrain::run::checkpoint::load(path).unwrap();
    let mut v: Vec<_> = ck
        .params
        .into_iter()
        .map(|t| (t.name, t.shape, t.values))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn a_custom_architecture_trains_saves_and_evaluates() {
    let w = workdir();
    let d = w.path();
    let layers = "conv2d:4:3,relu,maxpool:2,conv2d:6:3:1:0,relu,flatten,dense:16,relu";
    let j = json(&ok(wgtrain(
        d,
        &[
            "train", "--layers", layers, "--data", "digits", "--epochs", "15", "--lr", "3e-3",
            "--device", "cpu", "--out", "c", "--json",
        ],
    )));
    assert_eq!(j["model"], "custom");
    assert_eq!(
        j["layers"],
        "conv2d:4:3:1:1,relu,maxpool:2:2,conv2d:6:3:1:0,relu,flatten,dense:16,relu,dense:10"
    );
    // 4·1·9+4 + 6·4·9+6 + 24·16+16 + 16·10+10 conv, conv, dense, output.
    assert_eq!(j["params"], 40 + 222 + 400 + 170);
    let acc = j["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "test accuracy {acc}");
    // Parameters are named by layer position; the checkpoint rebuilds the
    // same model, which evaluates to the same figure.
    let names: Vec<String> = tensors(&d.join("c/model.safetensors"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.3.bias",
            "layers.3.weight",
            "layers.6.bias",
            "layers.6.weight",
            "layers.8.bias",
            "layers.8.weight"
        ]
    );
    let e = json(&ok(wgtrain(
        d,
        &["eval", "--model", "c", "--device", "cpu", "--json"],
    )));
    assert_eq!(e["test"]["accuracy"].as_f64().unwrap(), acc);
    assert_eq!(e["layers"], j["layers"]);
}

/// The baseline named `name`'s value of `metric` in a summary.
fn baseline(j: &Value, name: &str, metric: &str) -> f64 {
    j["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name && b["metric"] == metric)
        .unwrap_or_else(|| panic!("no baseline {name} {metric} in {j}"))["value"]
        .as_f64()
        .unwrap()
}

#[test]
fn a_time_series_trains_in_windows_forecasts_and_evaluates() {
    let w = workdir();
    let d = w.path();
    let sun = "data/timeseries/sunspots_yearly.csv";
    let j = json(&ok(wgtrain(
        d,
        &[
            "train",
            "--layers",
            "gru:8",
            "--data",
            sun,
            "--window",
            "24",
            "--test-fraction",
            "0.2",
            "--epochs",
            "3",
            "--device",
            "cpu",
            "--out",
            "s",
            "--json",
        ],
    )));
    // 309 years give 285 windows of 24 and the year after: the last 20 %
    // (57) test, in time order; a many-to-one read-out is added.
    assert_eq!(j["layers"], "gru:8,last,dense:1");
    assert_eq!(j["samples"]["test"], 57);
    // data/README.md's figure for "same as last year" on these windows.
    let last = baseline(&j, "same as last value", "rmse");
    assert!((last - 33.0).abs() < 0.05, "{last}");
    assert!(baseline(&j, "least squares over the window", "rmse") < last);
    // eval on the checkpoint scores the same test windows; predict
    // forecasts after every window, the file's last one included.
    let e = json(&ok(wgtrain(
        d,
        &["eval", "--model", "s", "--device", "cpu", "--json"],
    )));
    assert_eq!(e["test"]["rmse"], j["test"]["rmse"]);
    let p = ok(wgtrain(
        d,
        &["predict", "--model", "s", "--input", sun, "--device", "cpu"],
    ));
    assert_eq!(stdout(&p).lines().count(), 1 + 309 - 24 + 1);

    // Gaps: an error naming the first, unless a policy is chosen; with
    // --relative the model forecasts changes, and predictions come back
    // in the series' units.
    let co2 = "data/timeseries/co2_weekly.csv";
    let base = [
        "train", "--layers", "lstm:4", "--data", co2, "--window", "8", "--epochs", "1",
    ];
    fails_with(
        wgtrain(d, &base),
        &[
            "line 8, column 'co2_ppmv': empty cell",
            "59 in all",
            "--missing",
        ],
    );
    let j = json(&ok(wgtrain(
        d,
        &[
            &base[..],
            &[
                "--missing",
                "interpolate",
                "--relative",
                "--out",
                "c",
                "--json",
            ],
        ]
        .concat(),
    )));
    assert!(j["baselines"].to_string().contains("same as last value"));
    let p = stdout(&ok(wgtrain(
        d,
        &["predict", "--model", "c", "--input", co2, "--device", "cpu"],
    )));
    let first: f64 = p.lines().nth(1).unwrap().parse().unwrap();
    assert!((300.0..340.0).contains(&first), "{first}");
    // The relative model exports too (checked in onnxruntime by .ci/run).
    ok(wgtrain(
        d,
        &[
            "export", "--model", "c", "--format", "onnx", "--output", "c.onnx",
        ],
    ));
    for (args, expect) in [
        (&["--window", "4", "--sequence"][..], "choose one"),
        (&["--relative"][..], "apply to a time series"),
        (&["--window", "0"][..], "--window must be at least 1"),
        (&["--window", "400"][..], "too short for --window 400"),
        (
            &["--window", "4", "--features", "year,nope"][..],
            "no column named 'nope'",
        ),
        (
            &["--window", "4", "--features", "year", "--relative"][..],
            "needs regression with the target among --features",
        ),
    ] {
        let mut a = vec![
            "train", "--layers", "lstm:4", "--data", sun, "--epochs", "1",
        ];
        a.extend_from_slice(args);
        fails_with(wgtrain(d, &a), &[expect]);
    }
    fails_with(
        wgtrain(
            d,
            &[
                "train", "--layers", "lstm:4", "--data", "iris", "--window", "4",
            ],
        ),
        &["--window reads a time series from a CSV file"],
    );
}

#[test]
fn table_rows_as_sequences() {
    // Iris' four measurements as a sequence of four steps, classified by a
    // GRU from its last state.
    let w = workdir();
    let d = w.path();
    let j = json(&ok(wgtrain(
        d,
        &[
            "train",
            "--layers",
            "gru:16",
            "--data",
            "iris",
            "--sequence",
            "--epochs",
            "60",
            "--lr",
            "0.01",
            "--device",
            "cpu",
            "--out",
            "i",
            "--json",
        ],
    )));
    assert_eq!(j["layers"], "gru:16,last,dense:3");
    let acc = j["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "test accuracy {acc}");
    let p = ok(wgtrain(
        d,
        &[
            "predict",
            "--model",
            "i",
            "--input",
            "data/tabular/iris.csv",
            "--device",
            "cpu",
        ],
    ));
    assert_eq!(stdout(&p).lines().count(), 151);
    // Another table with the columns in another order and an id column:
    // matched by name, and still read as sequences.
    let table = std::fs::read_to_string(d.join("data/tabular/iris.csv")).unwrap();
    let mut shuffled =
        String::from("id,target,petal_width_cm,petal_length_cm,sepal_width_cm,sepal_length_cm\n");
    for (n, line) in table.lines().skip(1).enumerate() {
        let c: Vec<&str> = line.split(',').collect();
        shuffled += &format!("{n},{},{},{},{},{}\n", c[4], c[3], c[2], c[1], c[0]);
    }
    std::fs::write(d.join("other.csv"), shuffled).unwrap();
    let all = |data: &str| {
        json(&ok(wgtrain(
            d,
            &[
                "eval", "--model", "i", "--data", data, "--split", "all", "--device", "cpu",
                "--json",
            ],
        )))["test"]["accuracy"]
            .clone()
    };
    assert_eq!(all("other.csv"), all("data/tabular/iris.csv"));
}

#[test]
fn a_printed_config_repeats_the_run_bit_for_bit() {
    let w = workdir();
    let d = w.path();
    let flags = [
        "--layers",
        "dense:12,sigmoid,dense:8,relu",
        "--data",
        "iris",
        "--epochs",
        "7",
        "--batch-size",
        "16",
        "--optimizer",
        "adamw",
        "--weight-decay",
        "0.05",
        "--lr",
        "0.01",
        "--seed",
        "3",
        "--device",
        "cpu",
    ];
    let mut first = vec!["train", "--out", "a", "--quiet"];
    first.extend(flags);
    ok(wgtrain(d, &first));
    let mut print = vec!["train", "--print-config"];
    print.extend(flags);
    let printed = stdout(&ok(wgtrain(d, &print)));
    assert!(printed.contains("kind = \"adamw\""), "{printed}");
    // What --print-config prints is what the run wrote beside its model.
    assert_eq!(
        printed,
        std::fs::read_to_string(d.join("a/config.toml")).unwrap()
    );
    std::fs::write(d.join("run.toml"), &printed).unwrap();
    ok(wgtrain(
        d,
        &[
            "train", "--config", "run.toml", "--device", "cpu", "--out", "b", "--quiet",
        ],
    ));
    assert_eq!(
        tensors(&d.join("a/model.safetensors")),
        tensors(&d.join("b/model.safetensors"))
    );
    // Flags override the file.
    let o = ok(wgtrain(
        d,
        &[
            "train",
            "--config",
            "run.toml",
            "--epochs",
            "2",
            "--print-config",
        ],
    ));
    assert!(stdout(&o).contains("epochs = 2"));
}

/// `--clip-norm off` turns off a recurrent preset's clipping, and the
/// config it prints (and a run writes) says so, so that the file repeats it.
#[test]
fn clipping_can_be_turned_off() {
    let w = workdir();
    let d = w.path();
    let print = |extra: &[&str]| {
        let mut args = vec!["train", "rnn", "--print-config"];
        args.extend(extra);
        wgtrain(d, &args)
    };
    let default = stdout(&ok(print(&[])));
    assert!(default.contains("clip_norm = 5.0"), "{default}");
    let off = stdout(&ok(print(&["--clip-norm", "off"])));
    assert!(off.contains("clip_norm = \"off\""), "{off}");
    std::fs::write(d.join("off.toml"), &off).unwrap();
    let again = ok(wgtrain(
        d,
        &["train", "--config", "off.toml", "--print-config"],
    ));
    assert_eq!(stdout(&again), off);
    let set = stdout(&ok(print(&["--clip-norm", "2.5"])));
    assert!(set.contains("clip_norm = 2.5"), "{set}");
    for bad in ["-1", "of", "inf"] {
        fails_with(print(&["--clip-norm", bad]), &["--clip-norm"]);
    }
}

#[test]
fn bad_architectures_and_configs() {
    let w = workdir();
    let d = w.path();
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--device", "cpu", "--out", "x"];
        args.extend(extra);
        wgtrain(d, &args)
    };
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["--layers", "dense:8,swish", "--data", "iris"],
            &["layer 1", "unknown layer 'swish'"],
        ),
        (
            &["--layers", "conv2d:4:3", "--data", "iris"],
            &["layer 0 (conv2d:4:3:1:1)", "takes an image", "[4]"],
        ),
        (
            &["--layers", "conv2d:4:3,dense:8", "--data", "digits"],
            &["layer 1 (dense:8)", "flatten", "[4, 8, 8]"],
        ),
        (
            &["--layers", "dense:0", "--data", "iris"],
            &["dense:0", "units must be at least 1"],
        ),
        (
            &["--layers", "maxpool:16,flatten", "--data", "digits"],
            &["layer 0 (maxpool:16:16)", "at least 16×16", "[1, 8, 8]"],
        ),
        (
            &["--layers", "rnn:8", "--data", "iris"],
            &["layer 0 (rnn:8)", "sequence"],
        ),
    ];
    for (args, expect) in cases {
        fails_with(train(args), expect);
    }
    fails_with(train(&["--layers", "dense:8"]), &["--data is needed"]);
    fails_with(train(&[]), &["a preset", "--layers", "--config"]);
    fails_with(
        train(&["mlp", "--layers", "dense:8", "--hidden", "4"]),
        &["--hidden and --channels size a preset"],
    );
    fails_with(
        train(&["cnn", "--hidden", "4"]),
        &["--hidden does not apply to the cnn preset"],
    );
    std::fs::write(d.join("typo.toml"), "data = \"iris\"\nepocs = 3\n").unwrap();
    fails_with(train(&["--config", "typo.toml"]), &["typo.toml", "epocs"]);
    std::fs::write(
        d.join("bad.toml"),
        "data = \"iris\"\nlayers = \"dense:4,\"\n",
    )
    .unwrap();
    fails_with(
        train(&["--config", "bad.toml"]),
        &["bad.toml", "empty layer"],
    );
    std::fs::write(d.join("syntax.toml"), "data = [\n").unwrap();
    fails_with(train(&["--config", "syntax.toml"]), &["syntax.toml"]);
    // Whole lines of their own: no quoted source, no serde enum names.
    for (text, expect) in [
        (
            "data = \"iris\"\nepochs = 3\nepochs = 4\n",
            "line 3: duplicate key",
        ),
        (
            "data = \"iris\"\nepochs = -5\n",
            "epochs must be at least 1, got -5",
        ),
        (
            "data = \"iris\"\nepochs = 2.5\n",
            "epochs must be an integer (no decimal point), got 2.5",
        ),
    ] {
        std::fs::write(d.join("one.toml"), text).unwrap();
        let o = train(&["--config", "one.toml"]);
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        fails_with(o, &["one.toml", expect]);
    }
    fails_with(train(&["--config", "missing.toml"]), &["missing.toml"]);
    assert!(!d.join("x").exists(), "no run directory for a bad setting");
}

// ---- files and run directories: nothing overwritten, nothing shared ------

/// Runs wgtrain in `dir` with stdout to `out`; stderr is kept.
fn wgtrain_to(dir: &Path, args: &[&str], out: std::process::Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", dir)
        .stdout(out)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("wgtrain runs")
}

#[test]
fn a_closed_or_full_stdout_ends_cleanly_and_loses_no_run() {
    let w = workdir();
    let d = w.path();
    // A reader that stops at once (`wgtrain train ... | head -0`): the run
    // goes on, saves, and ends quietly.
    let train = [
        "train", "mlp", "--data", "iris", "--device", "cpu", "--epochs", "3", "--out", "piped",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(train)
        .current_dir(d)
        .env("XDG_RUNTIME_DIR", d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wgtrain starts");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    assert!(d.join("piped/model.safetensors").is_file());
    // A full disk: one error line and exit 1 from every command, and a
    // training run that still saves.
    let full = || std::fs::File::create("/dev/full").unwrap().into();
    let mut train_full = train;
    *train_full.last_mut().unwrap() = "full";
    for args in [
        &train_full[..],
        &["eval", "--model", "piped", "--device", "cpu"],
        &["devices"],
        &["train", "mlp", "--print-config"],
        &["completions", "bash"],
        &[
            "bench",
            "--device",
            "cpu",
            "--workloads",
            "K4",
            "--quick",
            "--json",
        ],
    ] {
        let o = wgtrain_to(d, args, full());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let lines: Vec<_> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert!(
            lines.len() == 1 && lines[0].contains("No space left"),
            "{args:?}: {err}"
        );
    }
    assert!(d.join("full/model.safetensors").is_file());
}

#[test]
fn outputs_replace_only_regular_files() {
    let w = workdir();
    let d = w.path();
    ok(wgtrain(
        d,
        &[
            "train", "logistic", "--data", "iris", "--epochs", "2", "--device", "cpu", "--out",
            "m", "--quiet",
        ],
    ));
    let predict = |out: &str| {
        wgtrain(
            d,
            &[
                "predict",
                "--model",
                "m",
                "--input",
                "data/tabular/iris.csv",
                "--device",
                "cpu",
                "--output",
                out,
            ],
        )
    };
    // A symbolic link is refused, and what it points to is left alone.
    std::fs::write(d.join("target.txt"), "keep me").unwrap();
    std::os::unix::fs::symlink(d.join("target.txt"), d.join("link.csv")).unwrap();
    fails_with(predict("link.csv"), &["link.csv", "symbolic link"]);
    assert_eq!(
        std::fs::read_to_string(d.join("target.txt")).unwrap(),
        "keep me"
    );
    // A device is written through, not replaced by a file.
    ok(predict("/dev/null"));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // A regular file is replaced whole, and no temporary file is left.
    std::fs::write(d.join("p.csv"), "old").unwrap();
    ok(predict("p.csv"));
    let text = std::fs::read_to_string(d.join("p.csv")).unwrap();
    assert!(text.starts_with("prediction,p_0,p_1,p_2") && text.lines().count() == 151);
    assert!(
        !files(d).iter().any(|f| f.ends_with(".tmp")),
        "{:?}",
        files(d)
    );
    // --overwrite replaces a run only with one that saved an epoch: a run
    // that diverges at once leaves the previous one as it was.
    let before = std::fs::read(d.join("m/model.safetensors")).unwrap();
    fails_with(
        wgtrain(
            d,
            &[
                "train",
                "logistic",
                "--data",
                "iris",
                "--device",
                "cpu",
                "--out",
                "m",
                "--overwrite",
                "--lr",
                "1e30",
            ],
        ),
        &["diverged", "the run it was to replace stays in m"],
    );
    assert_eq!(
        std::fs::read(d.join("m/model.safetensors")).unwrap(),
        before
    );
    // Modes: a new file gets what any program's would (umask applied), a
    // replaced one keeps its own, and a read-only one is not replaced.
    use std::os::unix::fs::PermissionsExt;
    let mode = |f: &str| std::fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
    std::fs::write(d.join("plain"), "").unwrap();
    ok(predict("new.csv"));
    assert_eq!(mode("new.csv"), mode("plain"));
    let set = |f: &str, m: u32| {
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(m)).unwrap()
    };
    set("p.csv", 0o640);
    ok(predict("p.csv"));
    assert_eq!(mode("p.csv"), 0o640);
    set("p.csv", 0o444);
    fails_with(predict("p.csv"), &["p.csv", "is read-only"]);
    // Nor is the command's own input.
    std::fs::copy(d.join("data/tabular/iris.csv"), d.join("in.csv")).unwrap();
    let o = wgtrain(
        d,
        &[
            "predict", "--model", "m", "--input", "in.csv", "--device", "cpu", "--output", "in.csv",
        ],
    );
    fails_with(o, &["in.csv", "is also this command's input"]);
    assert_eq!(
        std::fs::read(d.join("in.csv")).unwrap(),
        std::fs::read(d.join("data/tabular/iris.csv")).unwrap()
    );
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn run_directories_are_never_overwritten_or_shared() {
    let w = workdir();
    let d = w.path();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train", "logistic", "--data", "iris", "--epochs", "2", "--device", "cpu", "--quiet",
        ];
        args.extend(extra);
        wgtrain(d, &args)
    };
    // Default names: two runs, two directories.
    ok(train(&[]));
    ok(train(&[]));
    let runs = files(&d.join("runs"));
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r.starts_with("logistic-")));
    // An explicit --out that holds a run: refused unless --overwrite.
    ok(train(&["--out", "r"]));
    let before = std::fs::read(d.join("r/model.safetensors")).unwrap();
    fails_with(
        train(&["--out", "r", "--seed", "9"]),
        &["r", "already holds a run", "--resume", "--overwrite"],
    );
    assert_eq!(
        std::fs::read(d.join("r/model.safetensors")).unwrap(),
        before
    );
    ok(train(&["--out", "r", "--seed", "9", "--overwrite"]));
    assert_ne!(
        std::fs::read(d.join("r/model.safetensors")).unwrap(),
        before
    );
}

#[test]
fn a_second_process_on_a_busy_run_directory_is_refused() {
    let w = workdir();
    let d = w.path();
    // A run long enough to still hold its directory while we try.
    let mut busy = spawn(
        d,
        &[
            "train",
            "linear",
            "--epochs",
            "100000000",
            "--device",
            "cpu",
            "--out",
            "busy",
            "--quiet",
        ],
        false,
    );
    let lock = d.join("busy/.wgtrain.lock");
    let pid = busy.id().to_string();
    wait_until("the run locks its directory", 60, || {
        std::fs::read_to_string(&lock).unwrap_or_default() == pid
    });
    let second = wgtrain(
        d,
        &[
            "train",
            "--out",
            "busy",
            "--overwrite",
            "--layers",
            "",
            "--data",
            "diabetes",
        ],
    );
    let resumed = wgtrain(d, &["train", "--resume", "busy", "--device", "cpu"]);
    busy.kill().unwrap();
    busy.wait().unwrap();
    fails_with(second, &["busy", "in use by another wgtrain run", &pid]);
    fails_with(resumed, &["busy", "in use by another wgtrain run", &pid]);
}

// ---- inputs that decide memory, and silent wrong answers -------------------

#[test]
fn sizes_from_input_are_capped_before_allocating() {
    let w = workdir();
    let d = w.path();
    let train = |model: &str, data: &str| {
        wgtrain(
            d,
            &[
                "train", model, "--data", data, "--device", "cpu", "--epochs", "1",
            ],
        )
    };
    // One label decides the class count: capped, with the line named.
    std::fs::write(d.join("big.csv"), "a,target\n1,0\n2,20000000\n").unwrap();
    fails_with(
        train("logistic", "big.csv"),
        &["big.csv", "line 3", "over the limit of 65536 classes"],
    );
    // One class only: nothing to learn.
    std::fs::write(
        d.join("one.csv"),
        "a,target\n1,1\n2,1\n3,1\n4,1\n5,1\n6,1\n",
    )
    .unwrap();
    fails_with(
        train("logistic", "one.csv"),
        &["one.csv", "1 class", "at least two"],
    );
    // A text whose vocabulary would size the model.
    let wide: String = (0..5000u32)
        .filter_map(|i| char::from_u32(0x4e00 + i))
        .collect();
    std::fs::write(d.join("wide.txt"), wide.repeat(2)).unwrap();
    fails_with(
        train("rnn", "wide.txt"),
        &["wide.txt", "more than 4096 distinct characters"],
    );
    // A stream without end.
    fails_with(
        train("rnn", "/dev/zero"),
        &["/dev/zero", "larger than the limit"],
    );
    // A small gzip that inflates far past what its IDX header says.
    std::fs::create_dir(d.join("bomb")).unwrap();
    let mut header = vec![0u8, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
    header.extend(std::iter::repeat_n(0u8, 64 << 20));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &header).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 1 << 20);
    std::fs::write(d.join("bomb/train-images-idx3-ubyte.gz"), gz).unwrap();
    std::fs::write(
        d.join("bomb/train-labels-idx1-ubyte"),
        [0u8, 0, 8, 1, 0, 0, 0, 1, 3],
    )
    .unwrap();
    fails_with(
        train("mlp", "bomb"),
        &["train-images-idx3-ubyte.gz", "do not match"],
    );
    // Flags that size a loop or an allocation.
    ok(train("logistic", "iris"));
    let m = ["--model", "runs"];
    let model = files(&d.join("runs")).pop().unwrap();
    let model = format!("runs/{model}");
    let _ = m;
    fails_with(
        wgtrain(
            d,
            &[
                "sample",
                "--model",
                &model,
                "--length",
                "18446744073709551615",
            ],
        ),
        &["--length", "over the limit"],
    );
    // A prediction input with no images.
    std::fs::write(
        d.join("none-idx3-ubyte"),
        [0u8, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 8],
    )
    .unwrap();
    ok(wgtrain(
        d,
        &[
            "train", "mlp", "--hidden", "8", "--epochs", "1", "--device", "cpu", "--out", "dig",
            "--quiet",
        ],
    ));
    fails_with(
        wgtrain(
            d,
            &[
                "predict",
                "--model",
                "dig",
                "--input",
                "none-idx3-ubyte",
                "--device",
                "cpu",
            ],
        ),
        &["none-idx3-ubyte", "no images"],
    );
}

#[test]
fn no_silent_wrong_answers() {
    let w = workdir();
    let d = w.path();
    // A feature on a 1e-7 scale is standardised like any other: the same
    // data at both scales trains to the same accuracy.
    let iris = std::fs::read_to_string(d.join("data/tabular/iris.csv")).unwrap();
    let mut tiny = String::new();
    for (i, line) in iris.lines().enumerate() {
        if i == 0 {
            tiny += line;
        } else {
            let cells: Vec<&str> = line.split(',').collect();
            let (x, y) = cells.split_at(cells.len() - 1);
            let scaled: Vec<String> = x
                .iter()
                .map(|v| format!("{:e}", v.parse::<f64>().unwrap() * 1e-7))
                .collect();
            tiny += &format!("{},{}", scaled.join(","), y[0]);
        }
        tiny.push('\n');
    }
    std::fs::write(d.join("tiny.csv"), tiny).unwrap();
    let acc = |data: &str| {
        let j = json(&ok(wgtrain(
            d,
            &[
                "train", "logistic", "--data", data, "--epochs", "50", "--device", "cpu", "--json",
                "--quiet",
            ],
        )));
        j["test"]["accuracy"].as_f64().unwrap()
    };
    let (normal, small) = (acc("data/tabular/iris.csv"), acc("tiny.csv"));
    assert!(normal > 0.9, "{normal}");
    assert!(
        (normal - small).abs() < 0.05,
        "unscaled {normal} vs 1e-7 scale {small}"
    );
    // Non-finite cells are rejected by predict, naming line and column.
    ok(wgtrain(
        d,
        &[
            "train", "logistic", "--data", "iris", "--epochs", "2", "--device", "cpu", "--out",
            "m", "--quiet",
        ],
    ));
    std::fs::write(
        d.join("nan.csv"),
        "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n1,2,3,4\n5,NaN,7,8\n",
    )
    .unwrap();
    fails_with(
        wgtrain(
            d,
            &[
                "predict", "--model", "m", "--input", "nan.csv", "--device", "cpu",
            ],
        ),
        &["nan.csv", "line 3, column 2", "not finite"],
    );
    // An out-of-range label in an image set: trains, and says so.
    std::fs::create_dir(d.join("odd")).unwrap();
    std::fs::copy(
        d.join("data/digits/digits-images-idx3-ubyte"),
        d.join("odd/train-images-idx3-ubyte"),
    )
    .unwrap();
    let mut labels = std::fs::read(d.join("data/digits/digits-labels-idx1-ubyte")).unwrap();
    labels[8] = 200;
    std::fs::write(d.join("odd/train-labels-idx1-ubyte"), labels).unwrap();
    let o = ok(wgtrain(
        d,
        &[
            "train", "logistic", "--data", "odd", "--epochs", "1", "--device", "cpu", "--quiet",
        ],
    ));
    assert!(
        stderr(&o).contains("warning:")
            && stderr(&o).contains("190 of the 201 classes have no training samples"),
        "{}",
        stderr(&o)
    );
    // A diverging run keeps only finite weights.
    let o = wgtrain(
        d,
        &[
            "train", "mlp", "--lr", "1e30", "--device", "cpu", "--out", "div", "--epochs", "3",
        ],
    );
    assert!(!o.status.success());
    let model = d.join("div/model.safetensors");
    if model.exists() {
        let ck = wgtrain::run::checkpoint::load(&model).unwrap();
        assert!(ck
            .params
            .iter()
            .all(|t| t.values.iter().all(|v| v.is_finite() && v.abs() < 1e6)));
    }
}

#[test]
fn numeric_flags_at_zero_and_at_their_maximum() {
    let w = workdir();
    let d = w.path();
    let max = "18446744073709551615";
    let base = [
        "train", "logistic", "--data", "iris", "--device", "cpu", "--quiet", "--epochs", "2",
    ];
    for (flag, value) in [
        ("--epochs", "0"),
        ("--epochs", max),
        ("--batch-size", "0"),
        ("--batch-size", max),
        ("--seq-len", "0"),
        ("--seq-len", max),
        ("--log-every", "0"),
        ("--log-every", max),
        ("--patience", "0"),
        ("--patience", max),
        ("--seed", max),
        ("--max-train-samples", "0"),
        ("--max-train-samples", max),
        ("--stop-after-epochs", "0"),
        ("--stop-after-epochs", max),
        ("--save-every", "0"),
        ("--save-every", "1e30"),
        ("--lr", "0"),
        ("--lr", "3.4e38"),
        ("--weight-decay", "3.4e38"),
        ("--clip-norm", "0"),
        ("--val-fraction", "1"),
        ("--test-fraction", "0.999999"),
    ] {
        let out = format!("o{}{}", flag.len(), value.len());
        let o = wgtrain(d, &[&base[..], &[flag, value, "--out", &out]].concat());
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{flag} {value} panicked:\n{err}");
        if !o.status.success() {
            let lines = err.lines().filter(|l| l.starts_with("error")).count();
            assert_eq!(lines, 1, "{flag} {value}:\n{err}");
        }
    }
    for (flag, value) in [
        ("--hidden", max),
        ("--hidden", "0"),
        ("--seq-len", max),
        ("--seq-len", "1"),
    ] {
        let o = wgtrain(
            d,
            &[
                "train", "rnn", "--device", "cpu", "--epochs", "1", flag, value,
            ],
        );
        assert!(!o.status.success(), "{flag} {value}");
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

/// Resident memory of a process, in bytes (Linux).
fn rss(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Trains for a long time on `device` and checks that resident memory stops
/// growing once the run is warm: history goes to metrics.csv, not memory,
/// and the checkpoint does not grow with the epochs.
fn memory_stays_flat(device: &str, warm_epochs: usize, more_epochs: usize) {
    let w = workdir();
    let d = w.path();
    let mut run = spawn(
        d,
        &[
            "train",
            "linear",
            "--epochs",
            "100000000",
            "--device",
            device,
            "--out",
            "long",
            "--save-every",
            "0.05",
            "--quiet",
        ],
        false,
    );
    let run_dir = d.join("long");
    let epochs = || epochs_logged(&run_dir);
    let wait_for = |n: usize| wait_until(&format!("{n} epochs on {device}"), 120, || epochs() >= n);
    wait_for(warm_epochs);
    // The least of five samples over a second: the allocator hands freed
    // pages back after a delay, which a loaded machine (the whole suite
    // running) stretches; a leak raises every sample.
    let settled_rss = || {
        (0..5)
            .map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(200));
                rss(run.id())
            })
            .min()
            .unwrap()
    };
    let (mut e1, mut r1) = (epochs(), rss(run.id()));
    let ck1 = std::fs::metadata(d.join("long/last.safetensors")).map_or(0, |m| m.len());
    // Up to three windows of `more_epochs`: a leak grows resident memory by
    // the same amount in each, so one flat window after a warm-up that a
    // loaded machine stretched is as telling as the first.
    let (mut e2, mut r2) = (e1, r1);
    for _ in 0..3 {
        wait_for(e1 + more_epochs);
        (e2, r2) = (epochs(), settled_rss());
        if r2 <= r1 + (1 << 20) {
            break;
        }
        (e1, r1) = (e2, r2);
    }
    let ck2 = std::fs::metadata(d.join("long/last.safetensors"))
        .unwrap()
        .len();
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(
        r2 <= r1 + (1 << 20),
        "{device}: resident memory grew from {r1} to {r2} bytes between epochs {e1} and {e2}"
    );
    // Only the digits of its counters may lengthen the metadata.
    assert!(
        ck1 == 0 || ck2 <= ck1 + 64,
        "{device}: checkpoint grew from {ck1} to {ck2} bytes"
    );
    assert!(
        ck2 < 16 << 10,
        "{device}: a {ck2}-byte checkpoint for 11 parameters"
    );
}

#[test]
fn memory_stays_flat_over_a_long_run_on_the_cpu() {
    // mimalloc fills its pages over the first few tens of thousands of
    // epochs (a megabyte or two; sampled every 3 s over 40 s of this run,
    // resident memory then stayed within 15.0–16.1 MB from 200,000 epochs
    // to 1.8 million), so the run warms up longer than it did on glibc.
    memory_stays_flat("cpu", 30_000, 200_000);
}

#[test]
fn memory_stays_flat_over_a_long_run_on_the_gpu() {
    let Some(_) = common::gpu() else { return };
    memory_stays_flat("gpu", 300, 2000);
}

#[test]
fn no_false_errors_without_a_runtime_dir_and_no_silent_empty_check() {
    let w = workdir();
    // Without XDG_RUNTIME_DIR the Vulkan loader's complaint must not reach
    // the user: wgtrain gives it a private directory.
    let o = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .arg("devices")
        .current_dir(w.path())
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(!stderr(&o).contains("XDG_RUNTIME_DIR"), "{}", stderr(&o));
    if common::gpu().is_some() {
        fails_with(
            wgtrain(w.path(), &["check", "--filter", "no-such-op"]),
            &["--filter 'no-such-op' matches no op"],
        );
    }
}

#[test]
fn shell_completions() {
    let w = workdir();
    let o = ok(wgtrain(w.path(), &["completions", "bash"]));
    let script = stdout(&o);
    assert!(
        script.contains("wgtrain") && script.contains("--layers"),
        "{script}"
    );
    assert!(!wgtrain(w.path(), &["completions", "tcsh"]).status.success());
}

#[test]
fn predictions_match_columns_by_name_and_speak_class_names() {
    let w = workdir();
    let d = w.path();
    let iris = std::fs::read_to_string(d.join("data/tabular/iris.csv")).unwrap();
    let names = ["setosa", "versicolor", "virginica"];
    let rows: Vec<Vec<String>> = iris
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let named = |r: &Vec<String>, i: usize| {
        if i == 0 {
            r[4].clone()
        } else {
            names[r[4].parse::<usize>().unwrap()].to_string()
        }
    };
    // Trained on named labels, columns in the file's order.
    let mut train = String::new();
    for (i, r) in rows.iter().enumerate() {
        train += &format!("{},{}\n", r[..4].join(","), named(r, i));
    }
    std::fs::write(d.join("named.csv"), train).unwrap();
    // The same table with the target first, the features reordered and an
    // extra id column.
    let mut shuffled = String::new();
    for (i, r) in rows.iter().enumerate() {
        let id = if i == 0 {
            "id".to_string()
        } else {
            i.to_string()
        };
        shuffled += &format!("{},{id},{},{},{},{}\n", named(r, i), r[3], r[1], r[0], r[2]);
    }
    std::fs::write(d.join("shuffled.csv"), shuffled).unwrap();
    ok(wgtrain(
        d,
        &[
            "train",
            "logistic",
            "--data",
            "named.csv",
            "--device",
            "cpu",
            "--out",
            "m",
            "--quiet",
        ],
    ));
    let o = ok(wgtrain(
        d,
        &[
            "predict",
            "--model",
            "m",
            "--input",
            "shuffled.csv",
            "--device",
            "cpu",
        ],
    ));
    assert!(stderr(&o).contains("ignoring column(s) the model does not take: target, id"));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "prediction,p_setosa,p_versicolor,p_virginica"
    );
    let right = lines
        .zip(rows.iter().skip(1))
        .filter(|(l, r)| l.split(',').next().unwrap() == names[r[4].parse::<usize>().unwrap()])
        .count();
    assert!(
        right >= 140,
        "{right} of 150 predicted right from reordered columns"
    );
    // eval reads the reordered table by names too, labels by name.
    let acc = |data: &str| {
        json(&ok(wgtrain(
            d,
            &[
                "eval", "--model", "m", "--data", data, "--split", "all", "--device", "cpu",
                "--json",
            ],
        )))["test"]["accuracy"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(acc("shuffled.csv"), acc("named.csv"));
    // A missing feature column, or a label the model does not know.
    let missing: String = std::fs::read_to_string(d.join("shuffled.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            format!("{},{},{},{}\n", c[0], c[1], c[2], c[3])
        })
        .collect();
    std::fs::write(d.join("missing.csv"), missing).unwrap();
    fails_with(
        wgtrain(
            d,
            &[
                "predict",
                "--model",
                "m",
                "--input",
                "missing.csv",
                "--device",
                "cpu",
            ],
        ),
        &[
            "missing.csv",
            "lacks the model's feature columns sepal_length_cm, petal_length_cm",
        ],
    );
    let odd = std::fs::read_to_string(d.join("named.csv"))
        .unwrap()
        .replacen("setosa", "daisy", 1);
    std::fs::write(d.join("odd.csv"), odd).unwrap();
    fails_with(
        wgtrain(
            d,
            &[
                "eval", "--model", "m", "--data", "odd.csv", "--split", "all", "--device", "cpu",
            ],
        ),
        &["label 'daisy' is not one of the model's classes"],
    );
}

#[test]
fn ctrl_c_saves_the_run_and_resume_finishes_it_exactly() {
    let w = workdir();
    let d = w.path();
    let args = [
        "train",
        "mlp",
        "--data",
        "data/mnist",
        "--max-train-samples",
        "20000",
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--quiet",
    ];
    let run = spawn(d, &[&args[..], &["--out", "stopped"]].concat(), true);
    // Interrupt once the first epoch is logged.
    let stopped = d.join("stopped");
    wait_until("a first epoch", 120, || epochs_logged(&stopped) >= 1);
    let kill = Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted at epoch") && err.contains("wgtrain train --resume stopped"),
        "{err}"
    );
    // Resumed, it ends where an uninterrupted run does, bit for bit.
    ok(wgtrain(
        d,
        &["train", "--resume", "stopped", "--device", "cpu", "--quiet"],
    ));
    ok(wgtrain(d, &[&args[..], &["--out", "straight"]].concat()));
    assert_eq!(
        tensors(&d.join("stopped/model.safetensors")),
        tensors(&d.join("straight/model.safetensors"))
    );
    assert_eq!(
        tensors(&d.join("stopped/last.safetensors")),
        tensors(&d.join("straight/last.safetensors"))
    );
}

#[test]
fn devices_and_check_speak_json() {
    let Some(_) = common::gpu() else { return };
    let w = workdir();
    let j = json(&ok(wgtrain(w.path(), &["devices", "--json"])));
    let adapters = j["adapters"].as_array().unwrap();
    assert!(!adapters.is_empty() && adapters[0]["name"].as_str().is_some());
    assert!(j["chosen"].as_str().is_some());
    let isa = j["cpu_instruction_set"].as_str().unwrap();
    assert!(
        ["AVX-512", "AVX2 + FMA", "NEON", "baseline"].contains(&isa),
        "{isa}"
    );
    let c = json(&ok(wgtrain(
        w.path(),
        &["check", "--json", "--filter", "fill"],
    )));
    let checks = c["checks"].as_array().unwrap();
    assert_eq!(c["total"].as_u64().unwrap() as usize, checks.len());
    assert_eq!(c["passed"], c["total"]);
    assert!(checks
        .iter()
        .all(|k| k["op"] == "fill" && k["pass"] == true));
}

#[test]
fn verbosity_and_early_stopping_say_what_happens() {
    let w = workdir();
    let d = w.path();
    let o = ok(wgtrain(
        d,
        &[
            "-vv", "train", "logistic", "--data", "iris", "--epochs", "2", "--device", "cpu",
            "--out", "v", "--quiet",
        ],
    ));
    assert!(
        stderr(&o).contains("saved v after epoch 2"),
        "{}",
        stderr(&o)
    );
    let o = ok(wgtrain(
        d,
        &[
            "train",
            "logistic",
            "--data",
            "iris",
            "--patience",
            "5",
            "--device",
            "cpu",
            "--out",
            "es",
        ],
    ));
    assert!(
        stdout(&o).contains("early stopping after epoch") && stdout(&o).contains("is kept"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn export_to_pytorch_names_and_layouts() {
    let w = workdir();
    let d = w.path();
    ok(wgtrain(
        d,
        &[
            "train",
            "--layers",
            "dense:5,relu",
            "--data",
            "iris",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--out",
            "m",
            "--quiet",
        ],
    ));
    ok(wgtrain(
        d,
        &[
            "export",
            "--model",
            "m",
            "--format",
            "pytorch",
            "--output",
            "m.pt.safetensors",
        ],
    ));
    let bytes = std::fs::read(d.join("m.pt.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "2.bias",
            "2.weight",
            "input.mean",
            "input.std"
        ]
    );
    // nn.Linear's [out, in]: wgtrain's [in, out] transposed.
    let ours = tensors(&d.join("m/model.safetensors"));
    let w0 = &ours.iter().find(|t| t.0 == "layers.0.weight").unwrap();
    assert_eq!(w0.1, [4, 5]);
    let pt = st.tensor("0.weight").unwrap();
    assert_eq!(pt.shape(), [5, 4]);
    let pt: Vec<f32> = pt
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for i in 0..4 {
        for j in 0..5 {
            assert_eq!(pt[j * 4 + i], w0.2[i * 5 + j]);
        }
    }
    assert_eq!(st.tensor("2.weight").unwrap().shape(), [3, 5]);
}

/// `--precision`: a bad value is named; f16 is recorded in the run's
/// config with its loss scaling (dynamic unless told) and both are kept on
/// resume (which refuses to change them); f16 on the CPU is emulated and
/// says so.
#[test]
fn precision_f16_is_recorded_and_kept() {
    let w = workdir();
    fails_with(
        wgtrain(w.path(), &["train", "logistic", "--precision", "f8"]),
        &["unknown precision 'f8'", "f32 or f16"],
    );
    for bad in ["maybe", "0", "-4", "1e30", "nan"] {
        fails_with(
            wgtrain(w.path(), &["train", "logistic", "--loss-scale", bad]),
            &["--loss-scale"],
        );
    }
    let o = ok(wgtrain(
        w.path(),
        &[
            "train",
            "logistic",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--precision",
            "f16",
            "--loss-scale",
            "1024",
            "--out",
            "fixed",
        ],
    ));
    assert!(stdout(&o).contains("loss scale 1024"), "{}", stdout(&o));
    let config = std::fs::read_to_string(w.path().join("fixed/config.toml")).unwrap();
    assert!(config.contains("loss_scale = \"1024\""), "{config}");
    let o = ok(wgtrain(
        w.path(),
        &[
            "train",
            "logistic",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--precision",
            "f16",
            "--out",
            "r",
        ],
    ));
    assert!(stdout(&o).contains("precision: f16"), "{}", stdout(&o));
    assert!(stdout(&o).contains("emulated"), "{}", stdout(&o));
    assert!(stdout(&o).contains("loss scale dynamic"), "{}", stdout(&o));
    let config = std::fs::read_to_string(w.path().join("r/config.toml")).unwrap();
    assert!(config.contains("precision = \"f16\""), "{config}");
    assert!(config.contains("loss_scale = \"dynamic\""), "{config}");
    fails_with(
        wgtrain(
            w.path(),
            &[
                "train",
                "--resume",
                "r",
                "--loss-scale",
                "off",
                "--epochs",
                "3",
            ],
        ),
        &["--loss-scale"],
    );
    fails_with(
        wgtrain(
            w.path(),
            &[
                "train",
                "--resume",
                "r",
                "--precision",
                "f32",
                "--epochs",
                "3",
            ],
        ),
        &["--precision"],
    );
    let o = ok(wgtrain(
        w.path(),
        &["train", "--resume", "r", "--epochs", "3", "--device", "cpu"],
    ));
    assert!(stdout(&o).contains("precision: f16"), "{}", stdout(&o));
}
