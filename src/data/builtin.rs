//! Small real datasets compiled into the binary, so that training works on a
//! fresh clone with no files. Sources and licences: data/README.md.

/// The names `--data` accepts for built-in datasets.
pub const NAMES: [&str; 5] = ["digits", "iris", "breast-cancer", "diabetes", "austen"];

/// A built-in dataset's bytes, in the format of its file in data/.
pub enum Builtin {
    /// IDX images and labels.
    Idx {
        /// The IDX3 images file.
        images: &'static [u8],
        /// The IDX1 labels file.
        labels: &'static [u8],
    },
    /// A CSV table with a header row.
    Csv(&'static [u8]),
    /// UTF-8 text.
    Text(&'static [u8]),
}

/// The bytes of the built-in dataset called `name`; `None` if there is none.
pub fn builtin(name: &str) -> Option<Builtin> {
    Some(match name {
        "digits" => Builtin::Idx {
            images: include_bytes!("../../data/digits/digits-images-idx3-ubyte"),
            labels: include_bytes!("../../data/digits/digits-labels-idx1-ubyte"),
        },
        "iris" => Builtin::Csv(include_bytes!("../../data/tabular/iris.csv")),
        "breast-cancer" => Builtin::Csv(include_bytes!("../../data/tabular/breast_cancer.csv")),
        "diabetes" => Builtin::Csv(include_bytes!("../../data/tabular/diabetes.csv")),
        "austen" => Builtin::Text(include_bytes!("../../data/text/pride_and_prejudice.txt")),
        _ => return None,
    })
}
