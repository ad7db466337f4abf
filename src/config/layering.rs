//! The layers under the typed sections: the TOML file, `ACCESSKEYD_*` variables laid over
//! it, secrets read from `*_file` keys, and the lenient readers that let a typed key take
//! its value as text (environment variables are always text).

use super::error::{invalid, ConfigError};
use crate::secret::Secret;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Prefix of environment variables that override the file. Nested keys are joined with `__`,
/// array entries are addressed by index: `ACCESSKEYD_DIRECTORIES__1__BIND_PASSWORD_FILE`.
pub const ENV_PREFIX: &str = "ACCESSKEYD_";

/// Largest list index an environment variable may address, plus one.
const MAX_ENV_INDEX: usize = 1000;

/// Variables with the prefix that are not configuration keys: `ACCESSKEYD_CONFIG` names the
/// file itself (read by the command line), `ACCESSKEYD_TEST_*` belong to the test suite.
fn is_reserved_env(name: &str) -> bool {
    name == "ACCESSKEYD_CONFIG" || name.starts_with("ACCESSKEYD_TEST_")
}

/// The file as a TOML table (empty without a file), and the name errors give it.
pub(super) fn read_file(file: Option<&Path>) -> Result<(toml::Table, String), ConfigError> {
    let Some(path) = file else {
        return Ok((toml::Table::new(), "configuration".to_string()));
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok((value, path.display().to_string()))
}

/// Reads `value` as a `T`; an error names `origin` and the key path, below `at` (a
/// `directories[i]` entry read on its own) when given.
pub(super) fn deserialize<T: DeserializeOwned>(
    value: toml::Value,
    origin: &str,
    at: Option<&str>,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = match at {
            None => path,
            Some(at) if path == "." => at.to_string(),
            Some(at) => format!("{at}.{path}"),
        };
        ConfigError::Parse {
            path: origin.to_string(),
            message: format!("`{path}`: {}", e.inner()),
        }
    })
}

/// Applies `ACCESSKEYD_A__B=v` as `a.b = "v"`; values stay strings and the typed fields
/// parse them, so a password of digits stays a password.
pub(super) fn apply_env(
    tree: &mut toml::Table,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if is_reserved_env(name) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(invalid(name.clone(), "empty path segment in variable name"));
        }
        insert_path(tree, &path, value, name)?;
    }
    Ok(())
}

fn insert_path(
    table: &mut toml::Table,
    path: &[String],
    value: &str,
    var: &str,
) -> Result<(), ConfigError> {
    let (head, rest) = path
        .split_first()
        .ok_or_else(|| invalid(var, "empty variable name"))?;
    if rest.is_empty() {
        table.insert(head.clone(), toml::Value::String(value.to_string()));
        return Ok(());
    }
    // `directories` is an array of tables addressed by index.
    if let Some((index, after)) = rest
        .split_first()
        .filter(|(i, _)| i.parse::<usize>().is_ok())
    {
        let index: usize = index.parse().unwrap_or_default();
        // A list entry is padded up to its index: bound it, or one variable could make
        // the process allocate without limit.
        if index >= MAX_ENV_INDEX {
            return Err(invalid(
                var,
                format!(
                    "list index {index} is too large (at most {})",
                    MAX_ENV_INDEX - 1
                ),
            ));
        }
        let entry = table
            .entry(head.clone())
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        let array = entry
            .as_array_mut()
            .ok_or_else(|| invalid(var, format!("`{head}` is not a list")))?;
        while array.len() <= index {
            array.push(toml::Value::Table(toml::Table::new()));
        }
        let inner = array[index]
            .as_table_mut()
            .ok_or_else(|| invalid(var, format!("`{head}[{index}]` is not a table")))?;
        if after.is_empty() {
            return Err(invalid(var, "a list entry needs a key after its index"));
        }
        return insert_path(inner, after, value, var);
    }
    let entry = table
        .entry(head.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let inner = entry
        .as_table_mut()
        .ok_or_else(|| invalid(var, format!("`{head}` is not a table")))?;
    insert_path(inner, rest, value, var)
}

/// Accepts a value of its own type or a string that parses to it (environment variables).
pub(super) fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + FromStr,
    T::Err: Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Value(T),
        Text(String),
    }
    match Either::<T>::deserialize(d)? {
        Either::Value(v) => Ok(v),
        Either::Text(s) => s.trim().parse().map_err(D::Error::custom),
    }
}

pub(super) fn lenient_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + FromStr,
    T::Err: Display,
{
    lenient(d).map(Some)
}

/// A list, or (from an environment variable) one comma-separated string.
pub(super) fn string_list<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(l) => l,
        Either::Text(s) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
    })
}

pub(super) fn string_list_opt<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    string_list(d).map(Some)
}

/// CIDRs (`10.0.0.0/8`) or single addresses, as a list or one comma-separated string.
pub(super) fn cidr_list<'de, D>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error>
where
    D: Deserializer<'de>,
{
    string_list(d)?
        .iter()
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| D::Error::custom(format!("`{s}` is not an address or CIDR")))
        })
        .collect()
}

/// Reads the secret in the file `path` (which may be in `$CREDENTIALS_DIRECTORY`) that the
/// setting `key` names.
pub(super) fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let path = super::credentials::credential_path(key, path)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    // Files written by `echo` or editors end in a newline that is not part of the secret.
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// `{key}` or `{key}_file`, not both; `required` names the key when neither is set.
pub(super) fn secret_or_file(
    key: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
    required: bool,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(
            format!("{key}_file"),
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(s), None) => Ok(Some(s)),
        (None, Some(path)) => Ok(Some(read_secret_file(&format!("{key}_file"), &path)?)),
        (None, None) if required => Err(invalid(key, "is required")),
        (None, None) => Ok(None),
    }
}

/// The keys a struct's derived `Deserialize` accepts, read from the type itself: derived
/// impls hand their field names to `deserialize_struct`, which this deserializer reports
/// instead of reading anything.
pub(super) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldProbe) {
        Err(FieldProbeError(fields)) => fields,
        Ok(_) => &[],
    }
}

struct FieldProbe;

#[derive(Debug)]
struct FieldProbeError(&'static [&'static str]);

impl Display for FieldProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fields: {:?}", self.0)
    }
}

impl std::error::Error for FieldProbeError {}

impl serde::de::Error for FieldProbeError {
    fn custom<M: Display>(_: M) -> Self {
        FieldProbeError(&[])
    }
}

impl<'de> Deserializer<'de> for FieldProbe {
    type Error = FieldProbeError;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, FieldProbeError> {
        Err(FieldProbeError(fields))
    }

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        _visitor: V,
    ) -> Result<V::Value, FieldProbeError> {
        Err(FieldProbeError(&[]))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
