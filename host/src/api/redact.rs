//! What readers do not see: values of configuration entries whose names look secret. Hook and
//! pipeline configs are plugin settings an admin wrote, and some are credentials (an API token
//! for a collector's source, a password). Admins see them as written; readers and invokers see
//! `<redacted>`, as plugin environment values already are.

use crate::platform::tokens::Role;
use serde_json::Value;

pub const REDACTED: &str = "<redacted>";

/// Whether a configuration key names a secret: it contains `token`, `secret`, `password` or
/// `key`, in any case (`api_key`, `AWS_SECRET_ACCESS_KEY`, `db-password`).
pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "secret", "password", "key"]
        .iter()
        .any(|s| k.contains(s))
}

/// Redacts, for a caller below admin, the secret-looking entries of every `config` object in
/// `value` (at any depth: a hook's config, each pipeline step's).
pub fn configs_for(role: Role, value: &mut Value) {
    if role < Role::Admin {
        configs(value);
    }
}

fn configs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::Object(config) if k == "config" => {
                        for (ck, cv) in config.iter_mut() {
                            if looks_secret(ck) {
                                *cv = Value::from(REDACTED);
                            }
                        }
                    }
                    _ => configs(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(configs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readers_see_secret_looking_config_values_redacted() {
        let original = json!({
            "name": "h",
            "config": {"api_token": "t0p", "Password": "pw", "delimiter": ",", "n": 3},
            "steps": [{"config": {"AWS_SECRET_ACCESS_KEY": "s", "columns": "a,b"}}],
            "token": "not a config entry",
        });
        let mut v = original.clone();
        configs_for(Role::Reader, &mut v);
        assert_eq!(v["config"]["api_token"], REDACTED);
        assert_eq!(v["config"]["Password"], REDACTED);
        assert_eq!(v["config"]["delimiter"], ",");
        assert_eq!(v["config"]["n"], 3);
        assert_eq!(v["steps"][0]["config"]["AWS_SECRET_ACCESS_KEY"], REDACTED);
        assert_eq!(v["steps"][0]["config"]["columns"], "a,b");
        assert_eq!(v["token"], "not a config entry");
        let mut admin = original.clone();
        configs_for(Role::Admin, &mut admin);
        assert_eq!(admin, original);
    }
}
