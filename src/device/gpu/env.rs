//! The `WGTRAIN_*` switches that pick GPU kernels, read strictly: a value
//! that names no choice is a one-line error, not a silent default, so a
//! typo (`WGTRAIN_CONV=bcats`) cannot make a benchmark measure the wrong
//! kernel.

use crate::error::{Error, Result};

/// Spellings that turn a switch on or off, for [`switch`].
const ON: &[&str] = &["1", "on", "true", "yes"];
const OFF: &[&str] = &["0", "off", "false", "no"];

/// The choice that the environment variable `name` names among `options`
/// (each a list of spellings, any case, and its value); `None` where the
/// variable is unset or empty.
pub(crate) fn choice<T: Copy>(name: &str, options: &[(&[&str], T)]) -> Result<Option<T>> {
    let value = std::env::var_os(name);
    parse(
        name,
        value.as_deref().map(|v| v.to_string_lossy()).as_deref(),
        options,
    )
}

/// [`choice`] on the value `value` of the variable `name`.
fn parse<T: Copy>(name: &str, value: Option<&str>, options: &[(&[&str], T)]) -> Result<Option<T>> {
    let Some(raw) = value else {
        return Ok(None);
    };
    let value = raw.trim().to_lowercase();
    if value.is_empty() {
        return Ok(None);
    }
    if let Some((_, v)) = options
        .iter()
        .find(|(names, _)| names.contains(&value.as_str()))
    {
        return Ok(Some(*v));
    }
    let expected: Vec<&str> = options.iter().map(|(names, _)| names[0]).collect();
    Err(Error::Config(format!(
        "{name}={raw}: expected {}",
        expected.join(", ")
    )))
}

/// An on/off switch: `Some(true)` for 1/on/true/yes, `Some(false)` for
/// 0/off/false/no, `None` where unset.
pub(crate) fn switch(name: &str) -> Result<Option<bool>> {
    choice(name, SWITCH)
}

/// The options of an on/off switch.
const SWITCH: &[(&[&str], bool)] = &[(ON, true), (OFF, false)];

#[cfg(test)]
mod tests {
    use super::*;

    // The values are passed in rather than set in the environment: setting a
    // variable while other test threads (and the Vulkan loader) read the
    // environment is a data race.
    #[test]
    fn a_known_value_is_read_in_any_case_and_an_unknown_one_is_an_error() {
        let options: &[(&[&str], u8)] = &[(&["plain"], 1), (&["bcast", "broadcast"], 2)];
        let read = |v| parse("WGTRAIN_CONV", v, options);
        assert_eq!(read(None).unwrap(), None);
        assert_eq!(read(Some(" ")).unwrap(), None);
        assert_eq!(read(Some("plain")).unwrap(), Some(1));
        assert_eq!(read(Some(" Broadcast ")).unwrap(), Some(2));
        let err = read(Some("bcats")).unwrap_err().to_string();
        assert!(
            err.contains("WGTRAIN_CONV=bcats: expected plain, bcast"),
            "{err}"
        );
    }

    #[test]
    fn a_switch_reads_on_and_off_and_rejects_anything_else() {
        let read = |v| parse("WGTRAIN_TUNE", Some(v), SWITCH);
        assert_eq!(read("OFF").unwrap(), Some(false));
        assert_eq!(read("no").unwrap(), Some(false));
        assert_eq!(read("1").unwrap(), Some(true));
        assert_eq!(read("Yes").unwrap(), Some(true));
        assert!(read("maybe").is_err());
    }
}
