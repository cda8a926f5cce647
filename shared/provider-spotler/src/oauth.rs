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
    let mut out = String::with_capacity(value.len());
    push_encoded(&mut out, value);
    out
}

/// Appends `value` percent-encoded per RFC 5849 section 3.6 (no intermediate strings: this runs
/// for every parameter of every Spotler call).
fn push_encoded(out: &mut String, value: &str) {
    out.extend(utf8_percent_encode(value, ENCODE));
}

/// The signature base string: `METHOD&enc(base_url)&enc(sorted params)`, where the parameters
/// are encoded, sorted by encoded name then value, and joined as `k=v&k=v` (section 3.4.1).
pub fn base_string<K: AsRef<str>, V: AsRef<str>>(method: &str, base_url: &str, params: &[(K, V)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (encode(k.as_ref()), encode(v.as_ref())))
        .collect();
    pairs.sort_unstable();
    let mut base = String::with_capacity(
        64 + base_url.len() * 2 + pairs.iter().map(|(k, v)| 2 * (k.len() + v.len()) + 6).sum::<usize>(),
    );
    base.push_str(&method.to_ascii_uppercase());
    base.push('&');
    push_encoded(&mut base, base_url);
    base.push('&');
    // `enc(k1=v1&k2=v2)` written directly: `=` and `&` encode to `%3D` and `%26`, and the
    // already encoded names and values are encoded a second time.
    for (index, (k, v)) in pairs.iter().enumerate() {
        if index > 0 {
            base.push_str("%26");
        }
        push_encoded(&mut base, k);
        base.push_str("%3D");
        push_encoded(&mut base, v);
    }
    base
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
    let timestamp = timestamp.to_string();
    let oauth = [
        ("oauth_consumer_key", consumer_key),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", timestamp.as_str()),
        ("oauth_version", "1.0"),
    ];
    let query: Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> = url.query_pairs().collect();
    let mut params: Vec<(&str, &str)> = Vec::with_capacity(oauth.len() + query.len());
    params.extend(oauth);
    params.extend(query.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
    // The base URL is the URL without query and fragment (section 3.4.1.2).
    let base_url = &url[..url::Position::AfterPath];
    let signature = sign(&base_string(method, base_url, &params), consumer_secret, "");
    let mut header = String::with_capacity(256);
    header.push_str("OAuth ");
    for (name, value) in oauth.iter().copied().chain([("oauth_signature", signature.as_str())]) {
        if header.len() > "OAuth ".len() {
            header.push_str(", ");
        }
        header.push_str(name);
        header.push_str("=\"");
        push_encoded(&mut header, value);
        header.push('"');
    }
    header
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
