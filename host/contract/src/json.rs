//! Deserialising the JSON texts that cross the contract (a plugin's configuration, a dataset
//! row's metadata) with errors that name the offending key.

use serde::de::DeserializeOwned;

/// Deserialises `json` (empty or blank text counts as `{}`). The error text names `what` and the
/// path of the offending key inside it: ``config key `a.b[2]`: invalid type ...``.
pub fn parse_named<T: DeserializeOwned>(json: &str, what: &str) -> Result<T, String> {
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
