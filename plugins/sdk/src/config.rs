//! Typed access to the WIT `config` (`list<tuple<string, string>>`).
//!
//! The host passes configuration as string pairs in the order the caller gave them; a key may
//! repeat, and the SDK takes the **last** value. Every accessor that can fail returns
//! [`Error::InvalidConfig`] with a message naming the key and the offending value, which the host
//! shows to the caller as a 400. Plugins should call [`Config::check_keys`] first so a typo
//! (`treshold=2`) is an error rather than a silently ignored setting.

use std::fmt::Display;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Plugin configuration: ordered string key/value pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    /// Wrap the pairs the host passed.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// Build a config from borrowed pairs (handy in tests): `Config::from_pairs([("k", "v")])`.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// All pairs, in the order given (repeated keys included).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Take the pairs back.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The value of `key` (the last one if it repeats).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or `default` when it is not set.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The value of `key`, or an invalid-config error saying that it is required.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.get(key)
            .ok_or_else(|| Error::invalid_config(format!("missing required config key `{key}`")))
    }

    /// Parse the value of `key` with [`FromStr`]; `Ok(None)` when it is not set.
    ///
    /// Leading and trailing whitespace is ignored. A value that does not parse is an
    /// invalid-config error naming the key, the value and the expected type.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(key).map(|v| parse_value(key, v)).transpose()
    }

    /// Like [`Config::parse`], with a default when the key is not set.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// Like [`Config::parse`], but the key must be set.
    pub fn require_parse<T>(&self, key: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        parse_value(key, self.require(key)?)
    }

    /// A boolean: `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0` (any case); `default` when
    /// the key is not set.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(Error::invalid_config(format!(
                "invalid value {v:?} for config key `{key}`: expected true or false"
            ))),
        }
    }

    /// A comma-separated list (`columns=a, b,c`): items are trimmed and empty items dropped.
    /// `None` when the key is not set; `Some(vec![])` when it is set to nothing.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// One of a fixed set of words (exact match after trimming); `default` when not set.
    pub fn choice<'a>(&self, key: &str, allowed: &[&'a str], default: &'a str) -> Result<&'a str> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        let v = v.trim();
        allowed.iter().copied().find(|a| *a == v).ok_or_else(|| {
            Error::invalid_config(format!(
                "invalid value {v:?} for config key `{key}`: expected one of {}",
                allowed.join(", ")
            ))
        })
    }

    /// Fail on the first key that is not in `allowed`, naming it and the accepted keys.
    pub fn check_keys(&self, allowed: &[&str]) -> Result<()> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) if allowed.is_empty() => Err(Error::invalid_config(format!(
                "unknown config key `{k}` (this plugin accepts no config keys)"
            ))),
            Some((k, _)) => Err(Error::invalid_config(format!(
                "unknown config key `{k}` (accepted keys: {})",
                allowed.join(", ")
            ))),
        }
    }
}

fn parse_value<T>(key: &str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    value.trim().parse::<T>().map_err(|e| {
        let ty = std::any::type_name::<T>();
        Error::invalid_config(format!(
            "invalid value {value:?} for config key `{key}` (expected {ty}): {e}"
        ))
    })
}

impl From<Vec<(String, String)>> for Config {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Self::new(pairs)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_pairs(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn get_takes_last_value() {
        let c = cfg(&[("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(c.get("a"), Some("3"));
        assert_eq!(c.get("b"), Some("2"));
        assert_eq!(c.get("c"), None);
        assert_eq!(c.get_or("c", "dflt"), "dflt");
        assert_eq!(c.get_or("a", "dflt"), "3");
        assert_eq!(c.pairs().len(), 3);
    }

    #[test]
    fn parse_ok_and_default() {
        let c = cfg(&[("threshold", " 2.5 "), ("n", "7")]);
        assert_eq!(c.parse::<f64>("threshold").unwrap(), Some(2.5));
        assert_eq!(c.parse::<u32>("n").unwrap(), Some(7));
        assert_eq!(c.parse::<u32>("missing").unwrap(), None);
        assert_eq!(c.parse_or::<u32>("missing", 4).unwrap(), 4);
        assert_eq!(c.require_parse::<u32>("n").unwrap(), 7);
    }

    #[test]
    fn parse_error_names_key_and_value() {
        let c = cfg(&[("threshold", "abc")]);
        let e = c.parse::<f64>("threshold").unwrap_err();
        let Error::InvalidConfig(msg) = &e else {
            panic!("wrong kind: {e:?}")
        };
        assert!(msg.contains("`threshold`"), "{msg}");
        assert!(msg.contains("\"abc\""), "{msg}");
        assert!(msg.contains("f64"), "{msg}");
    }

    #[test]
    fn require_missing_is_invalid_config() {
        let e = Config::default().require("label").unwrap_err();
        assert_eq!(
            e,
            Error::invalid_config("missing required config key `label`")
        );
        assert!(Config::default().require_parse::<u8>("x").is_err());
    }

    #[test]
    fn flag_values() {
        let c = cfg(&[("a", "YES"), ("b", "0"), ("c", "maybe")]);
        assert!(c.flag("a", false).unwrap());
        assert!(!c.flag("b", true).unwrap());
        assert!(c.flag("zzz", true).unwrap());
        let e = c.flag("c", true).unwrap_err();
        assert!(e.message().contains("`c`") && e.message().contains("maybe"));
    }

    #[test]
    fn list_splits_and_trims() {
        let c = cfg(&[("columns", " a, b ,,c "), ("empty", "")]);
        assert_eq!(
            c.list("columns"),
            Some(vec!["a".to_string(), "b".into(), "c".into()])
        );
        assert_eq!(c.list("empty"), Some(vec![]));
        assert_eq!(c.list("missing"), None);
    }

    #[test]
    fn choice_accepts_listed_words_only() {
        let c = cfg(&[("how", "all"), ("bad", "some")]);
        assert_eq!(c.choice("how", &["any", "all"], "any").unwrap(), "all");
        assert_eq!(c.choice("nope", &["any", "all"], "any").unwrap(), "any");
        let e = c.choice("bad", &["any", "all"], "any").unwrap_err();
        assert!(e.message().contains("any, all") && e.message().contains("some"));
    }

    #[test]
    fn check_keys_reports_unknown_key() {
        let c = cfg(&[("columns", "a"), ("treshold", "2")]);
        assert!(c.check_keys(&["columns", "treshold"]).is_ok());
        let e = c.check_keys(&["columns", "threshold"]).unwrap_err();
        assert_eq!(
            e,
            Error::invalid_config(
                "unknown config key `treshold` (accepted keys: columns, threshold)"
            )
        );
        let e = c.check_keys(&[]).unwrap_err();
        assert!(e.message().contains("accepts no config keys"));
        assert!(Config::default().check_keys(&[]).is_ok());
    }
}
