//! Keyword arguments as settings: each keyword is a TOML key of `melpipe run --print-config`,
//! its value what the TOML file would hold. They go through the same reader as a `--config`
//! file, so that a value means the same in both and is refused with the same message.

use crate::{config_error, error_to_py};
use melpipe_core::config::{parse_device, Params, RunOptions, Settings};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::path::Path;

/// The valid keywords, for the message of an unknown one.
fn valid_keys(allowed: &[&str]) -> String {
    allowed.join(", ")
}

/// A Python value as the TOML value of `key`; `None` means "absent" (the default).
fn to_toml(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Option<toml::Value>> {
    if v.is_none() {
        return Ok(None);
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Some(toml::Value::Boolean(v.extract()?)));
    }
    if v.is_instance_of::<PyInt>() {
        let i: i64 = v.extract().map_err(|_| {
            PyTypeError::new_err(format!("`{key}`: {v} does not fit a 64-bit integer"))
        })?;
        return Ok(Some(toml::Value::Integer(i)));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(Some(toml::Value::Float(v.extract()?)));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Some(toml::Value::String(v.extract()?)));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in v.try_iter()? {
            match to_toml(key, &item?)? {
                Some(t) => items.push(t),
                None => {
                    return Err(PyTypeError::new_err(format!(
                        "`{key}`: a list of settings cannot hold None"
                    )))
                }
            }
        }
        return Ok(Some(toml::Value::Array(items)));
    }
    // NumPy scalars and other numbers: an integer if it is one, else a float.
    if let Ok(i) = v.call_method0("__index__").and_then(|i| i.extract::<i64>()) {
        return Ok(Some(toml::Value::Integer(i)));
    }
    if let Ok(f) = v.call_method0("__float__").and_then(|f| f.extract::<f64>()) {
        return Ok(Some(toml::Value::Float(f)));
    }
    let type_name = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(PyTypeError::new_err(format!(
        "`{key}`: a {type_name} is not a setting's value (a bool, int, float, str or list of str)"
    )))
}

/// The keywords as a TOML table; a keyword not in `allowed` is a `TypeError` naming the valid
/// ones.
pub(crate) fn keywords_table(
    params: &Bound<'_, PyDict>,
    allowed: &[&str],
    what: &str,
) -> PyResult<toml::Table> {
    let mut table = toml::Table::new();
    for (k, v) in params.iter() {
        let key: String = k.extract()?;
        if !allowed.contains(&key.as_str()) {
            return Err(PyTypeError::new_err(format!(
                "{what} got an unexpected keyword argument '{key}'; the settings it takes are: {}",
                valid_keys(allowed)
            )));
        }
        if let Some(value) = to_toml(&key, &v)? {
            table.insert(key, value);
        }
    }
    Ok(table)
}

/// Settings from the keywords alone (for `Extractor`): errors in them are `ConfigError`s.
pub(crate) fn from_table(py: Python<'_>, table: &toml::Table) -> PyResult<Settings> {
    let text = toml::to_string(table).map_err(|e| config_error(py, e.to_string()))?;
    Settings::from_toml(&text).map_err(|e| error_to_py(py, &e.into(), false))
}

/// The settings of `melpipe.run`: the defaults, then the `config` file, then the keywords (as
/// the CLI's flags override the file), then `device` and `strict`.
pub(crate) fn settings(
    py: Python<'_>,
    config: Option<&Path>,
    params: &Bound<'_, PyDict>,
    device: Option<&str>,
    strict: bool,
) -> PyResult<Settings> {
    let allowed: Vec<&str> = Params::KEYS
        .iter()
        .chain(RunOptions::KEYS)
        .copied()
        .filter(|k| !matches!(*k, "device" | "strict"))
        .collect();
    let keywords = keywords_table(params, &allowed, "run()")?;
    let mut table = match config {
        Some(p) => {
            let text = melpipe_cli::read_config(p).map_err(|e| error_to_py(py, &e, false))?;
            // The file alone first, so that its errors name its lines.
            Settings::from_toml(&text).map_err(|e| {
                let e = anyhow::Error::from(e).context(format!("in {}", p.display()));
                error_to_py(py, &e, false)
            })?;
            toml::from_str::<toml::Table>(&text).map_err(|e| config_error(py, e.to_string()))?
        }
        None => toml::Table::new(),
    };
    // The keywords alone, so that their errors show only them.
    from_table(py, &keywords)?;
    table.extend(keywords);
    let mut cfg = from_table(py, &table)?;
    if let Some(d) = device {
        cfg.run.device = parse_device(d).map_err(|e| error_to_py(py, &e.into(), false))?;
    }
    cfg.run.strict |= strict;
    cfg.validate()
        .map_err(|e| error_to_py(py, &e.into(), false))?;
    Ok(cfg)
}
