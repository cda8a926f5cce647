//! OAuth 1.0a "one-legged" HMAC-SHA1 signing (RFC 5849): consumer key and secret, no token.
//! The signature covers the method, the base URL and the OAuth and query parameters; a JSON
//! body is not signed.

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes per RFC 5849 section 3.6.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, ENCODE).to_string()
}

/// The signature base string: `METHOD&enc(base_url)&enc(sorted params)`.
pub fn base_string(method: &str, base_url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    pairs.sort();
    let normalized: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(base_url),
        encode(&normalized.join("&"))
    )
}

/// HMAC-SHA1 of `base` with key `enc(consumer_secret)&enc(token_secret)`, base64.
pub fn sign(base: &str, consumer_secret: &str, token_secret: &str) -> String {
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    let mut mac = match Hmac::<Sha1>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header for a request to `url` (query included) with `method`.
pub fn authorization(
    method: &str,
    url: &url::Url,
    consumer_key: &str,
    consumer_secret: &str,
    nonce: &str,
    timestamp: i64,
) -> String {
    let mut oauth = vec![
        ("oauth_consumer_key".to_owned(), consumer_key.to_owned()),
        ("oauth_nonce".to_owned(), nonce.to_owned()),
        ("oauth_signature_method".to_owned(), "HMAC-SHA1".to_owned()),
        ("oauth_timestamp".to_owned(), timestamp.to_string()),
        ("oauth_version".to_owned(), "1.0".to_owned()),
    ];
    let mut params = oauth.clone();
    params.extend(url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())));
    let mut base_url = url.clone();
    base_url.set_query(None);
    base_url.set_fragment(None);
    let signature = sign(&base_string(method, base_url.as_str(), &params), consumer_secret, "");
    oauth.push(("oauth_signature".to_owned(), signature));
    let fields: Vec<String> = oauth.iter().map(|(k, v)| format!("{k}=\"{}\"", encode(v))).collect();
    format!("OAuth {}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 5849 section 3.4.1 (signature base string).
    #[test]
    fn rfc5849_base_string_example() {
        let params: Vec<(String, String)> = [
            ("b5", "=%3D"),
            ("a3", "a"),
            ("c@", ""),
            ("a2", "r b"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
            ("c2", ""),
            ("a3", "2 q"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let base = base_string("post", "http://example.com/request", &params);
        assert_eq!(
            base,
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
        );
    }

    /// The well-known Twitter documentation example (HMAC-SHA1 with a token secret).
    #[test]
    fn twitter_signature_example() {
        let params: Vec<(String, String)> = [
            ("status", "Hello Ladies + Gentlemen, a signed OAuth request!"),
            ("include_entities", "true"),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            ("oauth_token", "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"),
            ("oauth_version", "1.0"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let base = base_string("POST", "https://api.twitter.com/1.1/statuses/update.json", &params);
        let signature = sign(
            &base,
            "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        );
        assert_eq!(signature, "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    }
}
