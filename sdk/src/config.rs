//! Typed configuration and metadata from JSON, with errors that name the offending key.
//!
//! ```
//! #[derive(serde::Deserialize, Default, Debug)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config { rho: f64 }
//!
//! let config: Config = ponder_sdk::config::parse(r#"{"rho": 0.3}"#).unwrap();
//! assert_eq!(config.rho, 0.3);
//! let error = ponder_sdk::config::parse::<Config>(r#"{"rho": "high"}"#).unwrap_err();
//! assert!(error.to_string().contains("`rho`"));
//! ```

use serde::de::DeserializeOwned;

use crate::PluginError;

/// Deserialises a plugin's configuration (the JSON of its manifest table). Any problem becomes
/// [`PluginError::InvalidConfig`] naming the key (`a.b[2]`) and the reason.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    deserialize(json, "config").map_err(PluginError::InvalidConfig)
}

/// Deserialises call input (a judge request's metadata, say); problems become
/// [`PluginError::InvalidInput`] naming `what` and the path inside it.
pub fn parse_input<T: DeserializeOwned>(json: &str, what: &str) -> Result<T, PluginError> {
    deserialize(json, what).map_err(PluginError::InvalidInput)
}

fn deserialize<T: DeserializeOwned>(json: &str, what: &str) -> Result<T, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path.is_empty() || path == "." {
            format!("{what}: {inner}")
        } else {
            format!("{what} key `{path}`: {inner}")
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        size: u32,
    }

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Config {
        rho: f64,
        inner: Vec<Inner>,
    }

    #[test]
    fn empty_config_takes_defaults() {
        assert_eq!(parse::<Config>("{}").unwrap(), Config::default());
        assert_eq!(parse::<Config>("").unwrap(), Config::default());
    }

    #[test]
    fn wrong_type_names_the_nested_key() {
        let error = parse::<Config>(r#"{"inner": [{"size": 1}, {"size": -3}]}"#).unwrap_err();
        let PluginError::InvalidConfig(text) = error else {
            panic!("expected invalid-config, got {error:?}");
        };
        assert!(text.contains("`inner[1].size`"), "{text}");
    }

    #[test]
    fn unknown_key_is_named() {
        let error = parse::<Config>(r#"{"rhoo": 1}"#).unwrap_err();
        assert!(error.to_string().contains("rhoo"), "{error}");
    }

    #[test]
    fn input_errors_are_invalid_input() {
        let error = parse_input::<Config>("\"text\"", "metadata").unwrap_err();
        assert!(matches!(error, PluginError::InvalidInput(_)), "{error:?}");
    }
}
