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

use crate::PluginFailure;

/// Deserialises a plugin's configuration (the JSON of its manifest table). Any problem becomes
/// [`PluginFailure::InvalidConfig`] naming the key (`a.b[2]`) and the reason.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, PluginFailure> {
    ponder_contract::json::parse_named(json, "config").map_err(PluginFailure::InvalidConfig)
}

/// Deserialises call input (a judge request's metadata, say); problems become
/// [`PluginFailure::InvalidInput`] naming `what` and the path inside it.
pub fn parse_input<T: DeserializeOwned>(json: &str, what: &str) -> Result<T, PluginFailure> {
    ponder_contract::json::parse_named(json, what).map_err(PluginFailure::InvalidInput)
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
        let PluginFailure::InvalidConfig(text) = error else {
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
        assert!(matches!(error, PluginFailure::InvalidInput(_)), "{error:?}");
    }
}
