//! Loaders against facts of the shipped datasets (data/README.md), and every
//! kind of bad input a user can hand them.

use std::path::Path;

use wgtrain::data::idx::{parse_idx, read_idx};
use wgtrain::data::tabular::parse_csv;
use wgtrain::data::Task;
use wgtrain::data::{
    prepare, split_dataset, Features, Layout, Missing, PrepareOptions, SeriesOptions, Targets,
    TextCorpus,
};

fn opts(task: Task) -> PrepareOptions {
    PrepareOptions {
        task,
        target: None,
        val_fraction: 0.1,
        test_fraction: 0.2,
        seq_len: 32,
        seed: 1,
        series: Default::default(),
    }
}

fn error_of<T: std::fmt::Debug>(r: wgtrain::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn mnist_matches_the_published_facts() {
    let labels = read_idx(Path::new("data/mnist/train-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(labels.dims, [60000]);
    assert_eq!(&labels.data[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    let mut counts = [0usize; 10];
    labels.data.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    let test = read_idx(Path::new("data/mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(&test.data[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let images = read_idx(Path::new("data/mnist/train-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(images.dims, [60000, 28, 28]);
    let n = images.data.len() as f64;
    let mean = images.data.iter().map(|&b| b as f64 / 255.0).sum::<f64>() / n;
    let var = images
        .data
        .iter()
        .map(|&b| (b as f64 / 255.0 - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!((mean - 0.1306604762738429).abs() < 1e-9, "mean {mean}");
    assert!(
        (var.sqrt() - 0.30810780385646264).abs() < 1e-9,
        "std {}",
        var.sqrt()
    );
}

#[test]
fn mnist_directory_uses_the_official_test_set() {
    let p = prepare("data/mnist", &opts(Task::Classification)).unwrap();
    assert_eq!(p.test.len(), 10000);
    assert_eq!(p.train.len() + p.val.len(), 60000);
    assert_eq!(p.train.sample_shape, [1, 28, 28]);
    assert!(matches!(p.train.features, Features::U8(_)));
}

#[test]
fn builtin_datasets_load_with_their_shapes() {
    let d = prepare("digits", &opts(Task::Classification)).unwrap();
    assert_eq!(d.train.len() + d.val.len() + d.test.len(), 1797);
    assert_eq!(d.train.sample_shape, [1, 8, 8]);
    assert_eq!(d.train.outputs(), 10);
    let iris = prepare("iris", &opts(Task::Classification)).unwrap();
    assert_eq!(
        (iris.train.len(), iris.val.len(), iris.test.len()),
        (105, 15, 30)
    );
    // Stratified: every class keeps its share of the held-out sets.
    let Targets::Classes { ids, .. } = &iris.test.targets else {
        panic!()
    };
    for c in 0..3 {
        assert_eq!(ids.iter().filter(|&&i| i == c).count(), 10);
    }
    let bc = prepare("breast-cancer", &opts(Task::Classification)).unwrap();
    assert_eq!(bc.train.sample_shape, [30]);
    let diabetes = prepare("diabetes", &opts(Task::Regression)).unwrap();
    assert!(matches!(
        diabetes.train.targets,
        Targets::Values { dims: 1, .. }
    ));
    assert!(diabetes.target_scaler.is_some());
    let austen = prepare(
        "austen",
        &PrepareOptions {
            test_fraction: 0.0,
            ..opts(Task::Text)
        },
    )
    .unwrap();
    assert_eq!(austen.vocab.as_ref().unwrap().len(), 75);
    // Contiguous split: the held-out part is the last 10% of the novel.
    assert_eq!(austen.train.len(), (684768 - 68476) / 32);
}

#[test]
fn normalisation_uses_training_statistics_only() {
    let p = prepare("breast-cancer", &opts(Task::Classification)).unwrap();
    let Features::F32(mut x) = p.train.features.clone() else {
        panic!()
    };
    p.normalizer.apply(&mut x, 30);
    for j in 0..30 {
        let col: Vec<f64> = x.iter().skip(j).step_by(30).map(|&v| v as f64).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        assert!(mean.abs() < 1e-4, "feature {j} mean {mean}");
    }
}

#[test]
fn splits_are_seeded() {
    let all = prepare("iris", &opts(Task::Classification)).unwrap();
    let again = prepare("iris", &opts(Task::Classification)).unwrap();
    assert_eq!(all.test, again.test);
    let other = prepare(
        "iris",
        &PrepareOptions {
            seed: 2,
            ..opts(Task::Classification)
        },
    )
    .unwrap();
    assert_ne!(all.test, other.test);
    let (tr, va, te) = split_dataset(&all.train, 0.0, 0.0, 3);
    assert_eq!((tr.len(), va.len(), te.len()), (105, 0, 0));
}

#[test]
fn idx_errors_name_the_file_and_the_problem() {
    let p = Path::new("bad.idx");
    assert!(error_of(parse_idx(&[1, 2, 3, 4, 0, 0, 0, 1, 9], p)).contains("wrong magic number"));
    let truncated = [0, 0, 8, 1, 0, 0, 0, 5, 1, 2];
    let e = error_of(parse_idx(&truncated, p));
    assert!(e.starts_with("bad.idx: truncated"), "{e}");
    assert!(
        error_of(parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], p)).contains("not supported")
    );
    assert!(error_of(parse_idx(&[0x1f, 0x8b, 0, 0], p)).contains("corrupt gzip"));
}

#[test]
fn idx_images_and_labels_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let images = [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 7, 9];
    let labels = [0u8, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3];
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), labels).unwrap();
    let e = error_of(prepare(
        dir.path().to_str().unwrap(),
        &opts(Task::Classification),
    ));
    assert!(e.contains("2 images but labels of shape [3]"), "{e}");
}

#[test]
fn csv_errors_name_the_line_and_column() {
    let p = Path::new("t.csv");
    let e = error_of(parse_csv(
        b"a,b,target\n1,2,0\n3,x,1\n",
        p,
        None,
        Task::Classification,
    ));
    assert_eq!(e, "t.csv: line 3, column 2 ('b'): 'x' is not a number");
    let e = error_of(parse_csv(
        b"a,b,target\n1,2,0\n3,1\n",
        p,
        None,
        Task::Classification,
    ));
    assert!(e.contains("line 3: 2 cells, expected 3"), "{e}");
    assert!(error_of(parse_csv(b"", p, None, Task::Regression)).contains("empty file"));
    assert!(error_of(parse_csv(b"a,target\n", p, None, Task::Regression)).contains("no data rows"));
    let e = error_of(parse_csv(
        b"a,target\n1,0.5\n",
        p,
        None,
        Task::Classification,
    ));
    assert!(
        e.contains("class label 0.5") && e.contains("not an integer"),
        "{e}"
    );
    let e = error_of(parse_csv(
        b"a,target\n1,-1\n",
        p,
        None,
        Task::Classification,
    ));
    assert!(e.contains("class label -1"), "{e}");
    let e = error_of(parse_csv(b"a,b\n1,2\n", p, Some("y"), Task::Regression));
    assert!(e.contains("no column named 'y'"), "{e}");
}

#[test]
fn csv_target_column_by_name() {
    let ds = parse_csv(
        b"y,a,b\n1.5,2,3\n2.5,4,5\n",
        Path::new("t.csv"),
        Some("y"),
        Task::Regression,
    )
    .unwrap();
    assert_eq!(ds.features, Features::F32(vec![2., 3., 4., 5.]));
    assert_eq!(
        ds.targets,
        Targets::Values {
            values: vec![1.5, 2.5],
            dims: 1
        }
    );
}

#[test]
fn text_errors() {
    let e = error_of(TextCorpus::from_bytes(
        &[b'a', 0xff, b'b'],
        Path::new("t.txt"),
    ));
    assert!(e.contains("not UTF-8") && e.contains("offset 1"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.txt");
    std::fs::write(&path, "just a few characters").unwrap();
    let e = error_of(prepare(
        path.to_str().unwrap(),
        &PrepareOptions {
            seq_len: 64,
            ..opts(Task::Text)
        },
    ));
    assert!(e.contains("too short for --seq-len 64"), "{e}");
}

#[test]
fn text_windows_predict_the_next_character() {
    let corpus = TextCorpus::from_bytes(b"abcabcabc", Path::new("t")).unwrap();
    assert_eq!(corpus.vocab, ['a', 'b', 'c']);
    let ds = corpus.windows(0..9, 3, "t");
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.features, Features::F32(vec![0., 1., 2., 0., 1., 2.]));
    assert_eq!(
        ds.targets,
        Targets::Classes {
            ids: vec![1, 2, 0, 1, 2, 0],
            classes: 3,
            per_sample: 3
        }
    );
    assert_eq!(TextCorpus::decode(&corpus.vocab, &[2, 0]), "ca");
    assert!(TextCorpus::encode(&corpus.vocab, "abz").is_err());
}

#[test]
fn unknown_sources_and_mismatched_tasks() {
    let e = error_of(prepare("no-such-dataset", &opts(Task::Classification)));
    assert!(
        e.contains("no such file") && e.contains("digits, iris"),
        "{e}"
    );
    let e = error_of(prepare("austen", &opts(Task::Classification)));
    assert!(e.contains("austen is text"), "{e}");
    let e = error_of(prepare("diabetes", &opts(Task::Classification)));
    assert!(e.contains("regression table"), "{e}");
}

#[test]
fn multi_member_gzip_is_one_stream() {
    // `cat a.gz b.gz` is valid gzip: its members decode as one stream.
    use std::io::Write;
    let idx = [0u8, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4];
    let gz = |b: &[u8]| {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b).unwrap();
        z.finish().unwrap()
    };
    let mut two = gz(&idx[..6]);
    two.extend(gz(&idx[6..]));
    let a = parse_idx(&two, Path::new("two.gz")).unwrap();
    assert_eq!((a.dims, a.data), (vec![4], vec![1, 2, 3, 4]));
}

#[test]
fn time_series_windows_split_in_time_order() {
    // 309 yearly values in windows of 24: 285 windows; the last 20 % (57)
    // test and the 10 % before them (29) validate, never shuffled.
    let mut o = opts(Task::Regression);
    o.series = SeriesOptions {
        layout: Layout::Window(24),
        ..Default::default()
    };
    let p = prepare("data/timeseries/sunspots_yearly.csv", &o).unwrap();
    assert_eq!((p.train.len(), p.val.len(), p.test.len()), (199, 29, 57));
    assert_eq!(p.train.sample_shape, [24, 1]);
    assert_eq!(p.last_value_feature, Some(0));
    let Targets::Values { values, .. } = &p.test.targets else {
        panic!("values")
    };
    // The first test window forecasts 1952 (31.5), the last one 2008 (2.9).
    assert_eq!((values[0], values[56]), (31.5, 2.9));
    // Each test window ends with the year before its target.
    let Features::F32(x) = &p.test.features else {
        panic!("f32")
    };
    let Targets::Values { values: val, .. } = &p.val.targets else {
        panic!("values")
    };
    assert_eq!(x[23], val[28]);

    // CO2: 59 empty weeks (data/README.md) are an error, dropped or filled.
    o.series.layout = Layout::Window(4);
    let co2 = "data/timeseries/co2_weekly.csv";
    let e = error_of(prepare(co2, &o));
    assert!(e.contains("59 in all"), "{e}");
    o.series.missing = Missing::Drop;
    let dropped = prepare(co2, &o).unwrap();
    o.series.missing = Missing::Interpolate;
    let filled = prepare(co2, &o).unwrap();
    let windows = |p: &wgtrain::data::Prepared| p.train.len() + p.val.len() + p.test.len();
    assert_eq!(windows(&dropped), 2284 - 59 - 4);
    assert_eq!(windows(&filled), 2284 - 4);
    assert!(
        filled.warnings[0].contains("59 empty cells filled"),
        "{:?}",
        filled.warnings
    );
}

#[test]
fn a_dataset_built_by_hand_is_checked_before_use() {
    use wgtrain::data::{Dataset, Features, Prepared, Targets};
    let ds = |features: Vec<f32>, ids: Vec<u32>| Dataset {
        name: "by hand".into(),
        task: Task::Classification,
        sample_shape: vec![2],
        features: Features::F32(features),
        targets: Targets::Classes {
            ids,
            classes: 2,
            per_sample: 1,
        },
        feature_names: Vec::new(),
        target_name: String::new(),
        class_names: Vec::new(),
    };
    let good = ds(vec![0.0; 8], vec![0, 1, 0, 1]);
    assert!(good.validate().is_ok());
    let e = error_of(Prepared::from_dataset(
        ds(vec![0.0; 7], vec![0, 1, 0, 1]),
        0.0,
        0.0,
        1,
    ));
    assert!(
        e.contains("7 feature values for 4 samples of shape [2]"),
        "{e}"
    );
    let e = error_of(Prepared::from_dataset(
        ds(vec![0.0; 8], vec![0, 1, 0, 2]),
        0.0,
        0.0,
        1,
    ));
    assert!(e.contains("class id 2 is not below the 2 classes"), "{e}");
}
