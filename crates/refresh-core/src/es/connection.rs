//! How to reach one Elasticsearch cluster: its URL, optional authentication and optional CA
//! certificate, from the refresh secret's `es_url`, `es_auth` and `es_ca_cert`
//! (docs/ARCHITECTURE.md "Secrets and configuration").
//!
//! Everything is validated here, before a client is built, so a mistake in the secret fails
//! when the secret is read, with the field's name. No error, `Debug` or `Display` output of
//! this module contains a user name, password or key: they show the endpoint, the kind of
//! authentication and the number of CA certificates only.

use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// A wrong field of the Elasticsearch settings: which one and why, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct SettingError {
    /// The secret's key, e.g. `es_auth.api_key`.
    pub field: &'static str,
    pub reason: String,
}

fn setting_error(field: &'static str, reason: impl Into<String>) -> SettingError {
    SettingError {
        field,
        reason: reason.into(),
    }
}

/// `es_auth` as written in the secret. Exactly one shape is accepted (see [`SearchAuth`]);
/// [`SearchSettings::new`] refuses the others.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsAuthFields {
    pub username: Option<SecretString>,
    pub password: Option<SecretString>,
    pub api_key_id: Option<SecretString>,
    pub api_key: Option<SecretString>,
}

/// How the client authenticates, as the `Authorization` header of every request.
#[derive(Clone)]
pub enum SearchAuth {
    /// `Basic base64(username:password)`: `es_auth` `{username, password}`, or the userinfo
    /// of `es_url` (kept for secrets written before `es_auth` existed).
    Basic {
        username: SecretString,
        password: SecretString,
    },
    /// `ApiKey base64(id:api_key)`: `es_auth` `{api_key_id, api_key}`, the `id` and `api_key`
    /// Elasticsearch returns when the key is created.
    ApiKey { id: SecretString, key: SecretString },
    /// `ApiKey <encoded>`: `es_auth` `{api_key}` alone, the already encoded `encoded` value
    /// (what Kibana shows).
    EncodedApiKey(SecretString),
}

impl SearchAuth {
    /// The kind of authentication, safe to log.
    pub fn kind(&self) -> &'static str {
        match self {
            SearchAuth::Basic { .. } => "basic",
            SearchAuth::ApiKey { .. } => "api key",
            SearchAuth::EncodedApiKey(_) => "encoded api key",
        }
    }
}

impl fmt::Debug for SearchAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            SearchAuth::Basic { .. } => "Basic",
            SearchAuth::ApiKey { .. } => "ApiKey",
            SearchAuth::EncodedApiKey(_) => "EncodedApiKey",
        };
        write!(f, "{name}(***)")
    }
}

/// The CA certificate(s) `es_ca_cert` holds (PEM), as DER. Trusted in addition to the public
/// roots the client ships with; the server's host name is always verified.
#[derive(Clone, PartialEq, Eq)]
pub struct CaCertificate {
    der: Vec<Vec<u8>>,
}

impl CaCertificate {
    /// Parses PEM text: one or more `CERTIFICATE` blocks; text between blocks (e.g. the
    /// `subject=` lines of a bundle) is ignored. Any other block (above all a private key) is
    /// refused. The error is a reason without any part of the text.
    pub fn from_pem(pem: &str) -> Result<CaCertificate, String> {
        let mut der = Vec::new();
        let mut block: Option<String> = None;
        for line in pem.lines().map(str::trim) {
            if let Some(label) = pem_label(line, "-----BEGIN ") {
                if block.is_some() {
                    return Err("a BEGIN line inside another PEM block".into());
                }
                if label != "CERTIFICATE" {
                    return Err(refused_block(label));
                }
                block = Some(String::new());
            } else if let Some(label) = pem_label(line, "-----END ") {
                let body = block.take().ok_or("an END line without its BEGIN line")?;
                if label != "CERTIFICATE" {
                    return Err("a certificate block ends with another label".into());
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(body.as_bytes())
                    .map_err(|_| "a certificate block is not valid base64".to_string())?;
                // DER of an X.509 certificate is a SEQUENCE; the TLS library checks the rest
                // when the client is built.
                if bytes.first() != Some(&0x30) {
                    return Err("a certificate block is not an X.509 certificate".into());
                }
                der.push(bytes);
            } else if let Some(body) = block.as_mut() {
                body.push_str(line);
            }
        }
        if block.is_some() {
            return Err("a certificate block has no END line".into());
        }
        if der.is_empty() {
            let hint = if pem.contains("\\n") {
                " (it contains a literal \\n: the JSON string needs real line breaks, written \\n once)"
            } else {
                ""
            };
            return Err(format!(
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----){hint}"
            ));
        }
        Ok(CaCertificate { der })
    }

    /// Each certificate, DER-encoded.
    pub fn der_certificates(&self) -> &[Vec<u8>] {
        &self.der
    }

    pub fn len(&self) -> usize {
        self.der.len()
    }

    pub fn is_empty(&self) -> bool {
        self.der.is_empty()
    }
}

impl fmt::Debug for CaCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCertificate")
            .field("certificates", &self.der.len())
            .finish()
    }
}

/// The label of a `-----BEGIN <label>-----` / `-----END <label>-----` line.
fn pem_label<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix("-----")
}

fn refused_block(label: &str) -> String {
    if label.contains("PRIVATE KEY") {
        return "holds a private key: only the CA certificate belongs here (and no private key \
                belongs in the secret)"
            .into();
    }
    // Labels are fixed words (`CERTIFICATE REQUEST`, `PUBLIC KEY`…); anything else is not named.
    if label.len() <= 40 && label.bytes().all(|b| b.is_ascii_uppercase() || b == b' ') {
        format!("holds a {label} block: only CERTIFICATE blocks belong here")
    } else {
        "holds a PEM block that is not a certificate".into()
    }
}

/// Where the cluster is and how to authenticate to it, validated. Cheap to clone.
#[derive(Clone)]
pub struct SearchSettings {
    /// `es_url` without its userinfo (that became `auth`).
    url: Url,
    /// `host:port`, for messages.
    endpoint: String,
    auth: Option<SearchAuth>,
    ca_cert: Option<CaCertificate>,
}

impl SearchSettings {
    /// Settings from a URL alone (`http(s)://[user:password@]host[:port][/path]`): no API
    /// key, no custom CA. Credentials in the URL become basic auth.
    pub fn from_url(url: &str) -> Result<SearchSettings, SettingError> {
        SearchSettings::new(url, None, None)
    }

    /// Settings from the secret's `es_url`, `es_auth` and `es_ca_cert`.
    pub fn new(
        url: &str,
        auth: Option<&EsAuthFields>,
        ca_cert_pem: Option<&str>,
    ) -> Result<SearchSettings, SettingError> {
        let (url, url_auth) = parse_url(url)?;
        let auth = match (auth.map(parse_auth).transpose()?, url_auth) {
            (Some(_), Some(_)) => {
                return Err(setting_error(
                    "es_auth",
                    "es_url carries credentials (user:password@) as well: keep one of the two \
                     (es_auth, with es_url holding no credentials)",
                ))
            }
            (auth, url_auth) => auth.or(url_auth),
        };
        let ca_cert = match ca_cert_pem {
            None => None,
            Some(_) if url.scheme() != "https" => {
                return Err(setting_error(
                    "es_ca_cert",
                    "is set but es_url is not https://: a CA certificate only applies to TLS",
                ))
            }
            Some(pem) => Some(
                CaCertificate::from_pem(pem)
                    .map_err(|reason| setting_error("es_ca_cert", reason))?,
            ),
        };
        let endpoint = match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err(setting_error("es_url", "has no host")),
        };
        Ok(SearchSettings {
            url,
            endpoint,
            auth,
            ca_cert,
        })
    }

    /// The cluster's URL, without credentials.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `host:port`, safe to log.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn auth(&self) -> Option<&SearchAuth> {
        self.auth.as_ref()
    }

    pub fn ca_cert(&self) -> Option<&CaCertificate> {
        self.ca_cert.as_ref()
    }

    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "https"
    }
}

impl fmt::Debug for SearchSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchSettings")
            .field("scheme", &self.url.scheme())
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth.as_ref().map(SearchAuth::kind))
            .field(
                "ca_certificates",
                &self.ca_cert.as_ref().map(CaCertificate::len),
            )
            .finish()
    }
}

impl fmt::Display for SearchSettings {
    /// `https://host:port (api key, custom CA)`: what an operator needs to tell clusters apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.url.scheme(), self.endpoint)?;
        let mut notes = Vec::new();
        if let Some(auth) = &self.auth {
            notes.push(auth.kind());
        }
        if self.ca_cert.is_some() {
            notes.push("custom CA");
        }
        if !notes.is_empty() {
            write!(f, " ({})", notes.join(", "))?;
        }
        Ok(())
    }
}

/// The URL without userinfo, and the basic auth the userinfo held.
fn parse_url(raw: &str) -> Result<(Url, Option<SearchAuth>), SettingError> {
    // url's parse errors describe the problem, never the input.
    let mut url = Url::parse(raw)
        .map_err(|e| setting_error("es_url", format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(setting_error(
            "es_url",
            "must start with http:// or https://",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(setting_error("es_url", "has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(setting_error(
            "es_url",
            "must not have a query string or fragment",
        ));
    }
    let auth = match (url.username(), url.password()) {
        ("", None) => None,
        ("", Some(_)) => return Err(setting_error("es_url", "has a password but no user name")),
        (user, password) => Some(SearchAuth::Basic {
            username: percent_decode(user).into(),
            password: password.map(percent_decode).unwrap_or_default().into(),
        }),
    };
    // Neither can fail on an http(s) URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, auth))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_auth(fields: &EsAuthFields) -> Result<SearchAuth, SettingError> {
    let basic = fields.username.is_some() || fields.password.is_some();
    let api_key = fields.api_key_id.is_some() || fields.api_key.is_some();
    match (basic, api_key) {
        (false, false) => Err(setting_error(
            "es_auth",
            "is empty: give {username, password}, {api_key_id, api_key} or {api_key} (encoded)",
        )),
        (true, true) => Err(setting_error(
            "es_auth",
            "mixes basic auth (username/password) with an API key (api_key_id/api_key): give one",
        )),
        (true, false) => {
            let username = fields
                .username
                .as_ref()
                .ok_or_else(|| setting_error("es_auth.username", "is missing (password is set)"))?;
            let password = fields
                .password
                .as_ref()
                .ok_or_else(|| setting_error("es_auth.password", "is missing (username is set)"))?;
            check_text("es_auth.username", username.expose_secret(), false)?;
            if username.expose_secret().contains(':') {
                return Err(setting_error(
                    "es_auth.username",
                    "must not contain ':' (basic auth cannot carry it)",
                ));
            }
            if username.expose_secret().trim() != username.expose_secret() {
                return Err(setting_error(
                    "es_auth.username",
                    "must not start or end with white space",
                ));
            }
            check_text("es_auth.password", password.expose_secret(), false)?;
            Ok(SearchAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            })
        }
        (false, true) => match (&fields.api_key_id, &fields.api_key) {
            (Some(_), None) => Err(setting_error(
                "es_auth.api_key",
                "is missing (api_key_id is set)",
            )),
            (Some(id), Some(key)) => {
                check_text("es_auth.api_key_id", id.expose_secret(), true)?;
                if id.expose_secret().contains(':') {
                    return Err(setting_error("es_auth.api_key_id", "must not contain ':'"));
                }
                check_text("es_auth.api_key", key.expose_secret(), true)?;
                Ok(SearchAuth::ApiKey {
                    id: id.clone(),
                    key: key.clone(),
                })
            }
            (None, Some(encoded)) => {
                check_text("es_auth.api_key", encoded.expose_secret(), true)?;
                if !is_encoded_api_key(encoded.expose_secret()) {
                    return Err(setting_error(
                        "es_auth.api_key",
                        "alone must be the encoded API key (base64 of `id:api_key`, the \
                         `encoded` value Elasticsearch returns); for the bare api_key, give \
                         api_key_id as well",
                    ));
                }
                Ok(SearchAuth::EncodedApiKey(encoded.clone()))
            }
            (None, None) => Err(setting_error("es_auth", "is empty")),
        },
    }
}

/// Non-empty, no control characters (a pasted line break), and for keys no white space at all.
fn check_text(field: &'static str, value: &str, token: bool) -> Result<(), SettingError> {
    if value.is_empty() {
        return Err(setting_error(field, "is empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(setting_error(
            field,
            "contains a control character (a pasted line break?)",
        ));
    }
    if token && value.chars().any(char::is_whitespace) {
        return Err(setting_error(field, "contains white space"));
    }
    Ok(())
}

/// Standard base64 (padded) of `id:key` with both parts non-empty. Also keeps the header value
/// the client builds from it within the characters a header may hold.
fn is_encoded_api_key(encoded: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            text.split_once(':')
                .map(|(id, key)| !id.is_empty() && !key.is_empty())
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(json: &str) -> EsAuthFields {
        serde_json::from_str(json).unwrap()
    }

    fn encoded(id: &str, key: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"))
    }

    /// A syntactically valid PEM block (a DER SEQUENCE); the TLS library checks the rest.
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    fn expose(secret: &SecretString) -> &str {
        secret.expose_secret()
    }

    #[test]
    fn a_url_alone_works_as_before() {
        let s = SearchSettings::from_url("http://127.0.0.1:19200").unwrap();
        assert_eq!(s.endpoint(), "127.0.0.1:19200");
        assert!(s.auth().is_none() && s.ca_cert().is_none() && !s.is_tls());
        assert_eq!(s.url().as_str(), "http://127.0.0.1:19200/");

        let s =
            SearchSettings::from_url("https://elastic:p%40ss%3Aw@es.example:9243/prefix").unwrap();
        match s.auth() {
            Some(SearchAuth::Basic { username, password }) => {
                assert_eq!((expose(username), expose(password)), ("elastic", "p@ss:w"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.url().as_str(), "https://es.example:9243/prefix");
        assert_eq!(s.endpoint(), "es.example:9243");
        // A user without a password stays basic auth with an empty password, as before.
        assert!(matches!(
            SearchSettings::from_url("http://elastic@h:1")
                .unwrap()
                .auth(),
            Some(SearchAuth::Basic { .. })
        ));
    }

    #[test]
    fn bad_urls_name_the_field_and_not_the_value() {
        for bad in [
            "not a url",
            "ftp://user:secret@host/",
            "http://user:secret@:9200",
            "http://:secret@host:9200",
            "http://host:9200/?token=secret",
            "",
        ] {
            let err = SearchSettings::from_url(bad).unwrap_err();
            assert_eq!(err.field, "es_url", "{bad}: {err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn the_three_auth_shapes() {
        let url = "https://es.internal:9200";
        let s = SearchSettings::new(
            url,
            Some(&auth(r#"{"username": "refresh", "password": "pa ss"}"#)),
            None,
        )
        .unwrap();
        assert!(
            matches!(s.auth(), Some(SearchAuth::Basic { username, password }) if expose(username) == "refresh" && expose(password) == "pa ss")
        );

        let s = SearchSettings::new(
            url,
            Some(&auth(
                r#"{"api_key_id": "VuaCfGcB", "api_key": "ui2lp2axTN"}"#,
            )),
            None,
        )
        .unwrap();
        assert!(
            matches!(s.auth(), Some(SearchAuth::ApiKey { id, key }) if expose(id) == "VuaCfGcB" && expose(key) == "ui2lp2axTN")
        );

        let key = encoded("VuaCfGcB", "ui2lp2axTN");
        let s = SearchSettings::new(
            url,
            Some(&auth(&format!(r#"{{"api_key": "{key}"}}"#))),
            None,
        )
        .unwrap();
        assert!(matches!(s.auth(), Some(SearchAuth::EncodedApiKey(k)) if expose(k) == key));
    }

    #[test]
    fn bad_auth_is_refused_naming_the_field() {
        let url = "https://es.internal:9200";
        let good_encoded = encoded("id", "k3y-secret");
        let cases: Vec<(String, &str)> = vec![
            ("{}".into(), "es_auth"),
            (
                r#"{"username": "u", "password": "p", "api_key": "k3y-secret"}"#.into(),
                "es_auth",
            ),
            (
                r#"{"password": "p", "api_key_id": "i", "api_key": "k3y-secret"}"#.into(),
                "es_auth",
            ),
            (r#"{"username": "u"}"#.into(), "es_auth.password"),
            (r#"{"password": "k3y-secret"}"#.into(), "es_auth.username"),
            (
                r#"{"username": "", "password": "k3y-secret"}"#.into(),
                "es_auth.username",
            ),
            (
                r#"{"username": "a:b", "password": "k3y-secret"}"#.into(),
                "es_auth.username",
            ),
            (
                r#"{"username": " u", "password": "k3y-secret"}"#.into(),
                "es_auth.username",
            ),
            (
                r#"{"username": "u", "password": ""}"#.into(),
                "es_auth.password",
            ),
            (
                r#"{"username": "u", "password": "k3y-secret\n"}"#.into(),
                "es_auth.password",
            ),
            (r#"{"api_key_id": "i"}"#.into(), "es_auth.api_key"),
            (
                r#"{"api_key_id": "", "api_key": "k3y-secret"}"#.into(),
                "es_auth.api_key_id",
            ),
            (
                r#"{"api_key_id": "a:b", "api_key": "k3y-secret"}"#.into(),
                "es_auth.api_key_id",
            ),
            (
                r#"{"api_key_id": "i", "api_key": "k3y secret"}"#.into(),
                "es_auth.api_key",
            ),
            (
                r#"{"api_key_id": "i", "api_key": ""}"#.into(),
                "es_auth.api_key",
            ),
            // The bare key without its id, and encodings of something other than `id:key`.
            (r#"{"api_key": "k3y-secret"}"#.into(), "es_auth.api_key"),
            (
                format!(
                    r#"{{"api_key": "{}"}}"#,
                    base64::engine::general_purpose::STANDARD.encode("k3y-secret")
                ),
                "es_auth.api_key",
            ),
            (
                format!(
                    r#"{{"api_key": "{}"}}"#,
                    base64::engine::general_purpose::STANDARD.encode(":k3y-secret")
                ),
                "es_auth.api_key",
            ),
            (
                format!(r#"{{"api_key": "{}"}}"#, good_encoded.trim_end_matches('=')),
                "es_auth.api_key",
            ),
            (
                format!(r#"{{"api_key": "{good_encoded}\n"}}"#),
                "es_auth.api_key",
            ),
        ];
        for (json, field) in cases {
            let err = SearchSettings::new(url, Some(&auth(&json)), None).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
            let text = err.to_string();
            for secret in ["k3y", "secret", &good_encoded] {
                assert!(!text.contains(secret), "{json}: {text}");
            }
        }
    }

    #[test]
    fn unknown_auth_keys_are_refused() {
        let err = serde_json::from_str::<EsAuthFields>(r#"{"user": "u", "password": "p"}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown field `user`"), "{err}");
    }

    #[test]
    fn credentials_in_the_url_and_es_auth_conflict() {
        let err = SearchSettings::new(
            "https://elastic:hunter2@es:9200",
            Some(&auth(r#"{"username": "u", "password": "p"}"#)),
            None,
        )
        .unwrap_err();
        assert_eq!(err.field, "es_auth");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn ca_certificates_are_parsed_strictly() {
        let s = SearchSettings::new("https://es:9200", None, Some(PEM)).unwrap();
        assert_eq!(s.ca_cert().map(CaCertificate::len), Some(1));
        assert_eq!(
            s.ca_cert().unwrap().der_certificates()[0],
            [0x30, 3, 2, 1, 1]
        );
        // A bundle with text around the blocks, CRLF line ends and indentation.
        let bundle = format!(
            "subject=CN = root\r\n  {}\r\nissuer=x\n{PEM}",
            PEM.replace('\n', "\r\n  ")
        );
        let s = SearchSettings::new("https://es:9200", None, Some(&bundle)).unwrap();
        assert_eq!(s.ca_cert().map(CaCertificate::len), Some(2));

        let key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n";
        let cases = [
            ("", "holds no PEM certificate"),
            ("not pem", "holds no PEM certificate"),
            (&PEM.replace('\n', "\\n"), "literal \\n"),
            (key, "private key"),
            (&format!("{PEM}{key}"), "private key"),
            (
                "-----BEGIN CERTIFICATE-----\nMAMC!!!=\n-----END CERTIFICATE-----",
                "not valid base64",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nc2VjcmV0\n-----END CERTIFICATE-----",
                "not an X.509 certificate",
            ),
            ("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n", "no END line"),
            ("MAMCAQE=\n-----END CERTIFICATE-----", "without its BEGIN"),
            (
                "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQE=\n-----END CERTIFICATE REQUEST-----",
                "CERTIFICATE REQUEST block",
            ),
        ];
        for (pem, expected) in cases {
            let err = SearchSettings::new("https://es:9200", None, Some(pem)).unwrap_err();
            assert_eq!(err.field, "es_ca_cert", "{pem}");
            assert!(err.reason.contains(expected), "{pem}: {err}");
            assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
        }

        let err = SearchSettings::new("http://es:9200", None, Some(PEM)).unwrap_err();
        assert_eq!(err.field, "es_ca_cert");
        assert!(err.reason.contains("not https://"), "{err}");
    }

    #[test]
    fn debug_and_display_show_no_credential() {
        let url = "https://es.internal:9200";
        let all = [
            SearchSettings::new(
                url,
                Some(&auth(
                    r#"{"username": "refresh-user", "password": "pa55word"}"#,
                )),
                Some(PEM),
            )
            .unwrap(),
            SearchSettings::new(
                url,
                Some(&auth(
                    r#"{"api_key_id": "key-id-1", "api_key": "key-secret-1"}"#,
                )),
                None,
            )
            .unwrap(),
            SearchSettings::new(
                url,
                Some(&auth(&format!(
                    r#"{{"api_key": "{}"}}"#,
                    encoded("key-id-2", "key-secret-2")
                ))),
                None,
            )
            .unwrap(),
            SearchSettings::from_url("https://url-user:url-pa55@es.internal:9200").unwrap(),
        ];
        let secrets = [
            "refresh-user",
            "pa55word",
            "key-id",
            "key-secret",
            &encoded("key-id-2", "key-secret-2"),
            "url-user",
            "url-pa55",
            "MAMCAQE",
        ];
        for settings in &all {
            let rendered = [
                format!("{settings:?}"),
                format!("{settings:#?}"),
                settings.to_string(),
                format!("{:?}", settings.auth()),
                format!("{:?}", settings.ca_cert()),
            ];
            for text in rendered {
                for secret in secrets {
                    assert!(!text.contains(secret), "{secret:?} leaked into {text}");
                }
            }
        }
        assert_eq!(
            all[0].to_string(),
            "https://es.internal:9200 (basic, custom CA)"
        );
        assert_eq!(all[1].to_string(), "https://es.internal:9200 (api key)");
        assert_eq!(
            format!("{:?}", all[2]),
            "SearchSettings { scheme: \"https\", endpoint: \"es.internal:9200\", auth: Some(\"encoded api key\"), ca_certificates: None }"
        );
        assert_eq!(format!("{:?}", all[0].auth().unwrap()), "Basic(***)");
        assert_eq!(
            format!("{:?}", all[0].ca_cert().unwrap()),
            "CaCertificate { certificates: 1 }"
        );
    }
}
