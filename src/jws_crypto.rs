//! RSA signature verification for `jsonwebtoken`, done by `ring`.
//!
//! `jsonwebtoken` (feature `rust_crypto`) verifies RS256 with the `rsa`
//! crate, whose big-number arithmetic made each verification cost about
//! 0.2 ms: a token request verifies two (the client's assertion and the
//! provider's id_token), and that was 40 % of its CPU time. `ring`, already
//! the proxy's source of randomness and digests, verifies the same
//! signature several times faster.
//!
//! [`install`] makes a `jsonwebtoken` crypto provider that is the crate's
//! own `rust_crypto` one in everything but the RSA verifiers (RS256/384/512
//! and PS256/384/512), which call `ring`. Everything around the signature
//! (header, claims, algorithm and key checks) is still `jsonwebtoken`'s and
//! the proxy's. `ring` accepts moduli of 2048 to 8192 bits; `jwks` refuses
//! keys under 2048 bits before a signature is looked at, for clients and
//! the provider alike.
//!
//! The library installs it itself, on first use: every path that hands
//! `jsonwebtoken` a key (`jwks` verifying, `id_token` and `upstream`
//! signing) calls [`install`] first, so the binary, the integration tests
//! and the unit tests all verify with this backend. `jsonwebtoken` keeps
//! one provider per process, chosen by whoever touches its crypto first; a
//! program (or a test) that signs with `jsonwebtoken` directly before the
//! library runs can make it pick its default, and [`install`] then says so
//! with `false`: `jwks` checks RSA signatures with `verify` as well in that
//! case, so the same rules hold anyway.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use ring::signature::{RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};

/// The provider: `jsonwebtoken`'s own, with `ring` for RSA verification.
fn provider() -> &'static CryptoProvider {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let default = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        CryptoProvider {
            signer_factory: default.signer_factory,
            verifier_factory: new_verifier,
            key_utils: default.key_utils.clone(),
        }
    })
}

/// Makes this the process's `jsonwebtoken` provider, if `jsonwebtoken` has
/// not picked one yet. True when it is the provider in force (installed by
/// this call or an earlier one), false when `jsonwebtoken` had already
/// settled on another. Cheap after the first call.
pub fn install() -> bool {
    static IN_FORCE: OnceLock<bool> = OnceLock::new();
    // Once jsonwebtoken has a provider it never changes, so the answer can
    // be kept.
    *IN_FORCE.get_or_init(|| {
        let in_force = match provider().install_default() {
            Ok(()) => true,
            Err(existing) => std::ptr::eq(existing, provider()),
        };
        if !in_force {
            tracing::debug!(
                "jsonwebtoken chose its crypto provider before the library ran; \
                 RSA signatures are checked by ring as well"
            );
        }
        in_force
    })
}

/// Checks a compact JWS's signature with this backend, whatever provider
/// `jsonwebtoken` has in force: `Some(true)` verified, `Some(false)` a
/// signature that does not verify (or an RSA key `ring` refuses, such as one
/// under 2048 bits), `None` when the token or key cannot be read (left to
/// `jsonwebtoken`'s parsing to name).
pub(crate) fn verify(token: &str, alg: Algorithm, key: &DecodingKey) -> Option<bool> {
    let (message, signature) = token.rsplit_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let verifier = new_verifier(&alg, key).ok()?;
    Some(verifier.verify(message.as_bytes(), &signature).is_ok())
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    match RingRsaVerifier::new(*algorithm, key) {
        Some(verifier) => verifier.map(|v| Box::new(v) as Box<dyn JwtVerifier>),
        None => {
            (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key)
        }
    }
}

/// The `ring` parameters for an RSA JWS algorithm; `None` for the others.
fn rsa_parameters(algorithm: Algorithm) -> Option<&'static RsaParameters> {
    use ring::signature as r;
    Some(match algorithm {
        Algorithm::RS256 => &r::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &r::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &r::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &r::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &r::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &r::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

enum RsaKey {
    /// Modulus and exponent, big-endian, without leading zero bytes.
    Components { n: Vec<u8>, e: Vec<u8> },
    /// A PKCS#1 `RSAPublicKey`.
    Der(Vec<u8>),
}

struct RingRsaVerifier {
    algorithm: Algorithm,
    parameters: &'static RsaParameters,
    key: RsaKey,
}

impl RingRsaVerifier {
    /// `None` when the algorithm is not an RSA one.
    fn new(algorithm: Algorithm, key: &DecodingKey) -> Option<Result<Self, Error>> {
        let parameters = rsa_parameters(algorithm)?;
        if key.family() != AlgorithmFamily::Rsa {
            return Some(Err(ErrorKind::InvalidKeyFormat.into()));
        }
        let strip = |bytes: &[u8]| {
            let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
            bytes[start..].to_vec()
        };
        let key = match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => RsaKey::Components {
                n: strip(n),
                e: strip(e),
            },
            DecodingKeyKind::SecretOrDer(der) => RsaKey::Der(der.clone()),
        };
        Some(Ok(RingRsaVerifier {
            algorithm,
            parameters,
            key,
        }))
    }
}

impl Verifier<Vec<u8>> for RingRsaVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let verified = match &self.key {
            RsaKey::Components { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(self.parameters, message, signature)
            }
            RsaKey::Der(der) => {
                UnparsedPublicKey::new(self.parameters, der).verify(message, signature)
            }
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingRsaVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::traits::PublicKeyParts;

    fn key() -> &'static rsa::RsaPrivateKey {
        static KEY: std::sync::OnceLock<rsa::RsaPrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key")
        })
    }

    /// A token signed by `jsonwebtoken` (the `rsa` crate), split into the
    /// signing input and the signature.
    fn signed(alg: Algorithm) -> (String, Vec<u8>) {
        let der = key().to_pkcs1_der().unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(alg),
            &serde_json::json!({"sub": "s", "n": 1}),
            &EncodingKey::from_rsa_der(der.as_bytes()),
        )
        .unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        (input.to_owned(), URL_SAFE_NO_PAD.decode(signature).unwrap())
    }

    fn keys() -> [DecodingKey; 3] {
        let public = key().to_public_key();
        let mut n = vec![0u8];
        n.extend(public.n().to_bytes_be());
        [
            DecodingKey::from_rsa_raw_components(
                &public.n().to_bytes_be(),
                &public.e().to_bytes_be(),
            ),
            // A JWK whose modulus carries a leading zero byte still verifies.
            DecodingKey::from_rsa_raw_components(&n, &public.e().to_bytes_be()),
            DecodingKey::from_rsa_der(public.to_pkcs1_der().unwrap().as_bytes()),
        ]
    }

    #[test]
    fn verifies_what_jsonwebtoken_signs_and_nothing_else() {
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            let (input, signature) = signed(alg);
            for key in keys() {
                let verifier = new_verifier(&alg, &key).unwrap();
                assert_eq!(verifier.algorithm(), alg);
                assert!(
                    verifier.verify(input.as_bytes(), &signature).is_ok(),
                    "{alg:?}"
                );
                let mut tampered = input.clone().into_bytes();
                tampered[3] ^= 1;
                assert!(verifier.verify(&tampered, &signature).is_err(), "{alg:?}");
                let mut forged = signature.clone();
                forged[10] ^= 1;
                assert!(
                    verifier.verify(input.as_bytes(), &forged).is_err(),
                    "{alg:?}"
                );
            }
        }
        // The hash is the algorithm's: an RS256 signature is not an RS512 one.
        let (input, signature) = signed(Algorithm::RS256);
        let verifier = new_verifier(&Algorithm::RS512, &keys()[0]).unwrap();
        assert!(verifier.verify(input.as_bytes(), &signature).is_err());
    }

    #[test]
    fn other_algorithms_and_key_families_are_left_to_jsonwebtoken() {
        assert!(rsa_parameters(Algorithm::ES256).is_none());
        assert!(rsa_parameters(Algorithm::HS256).is_none());
        let ec = DecodingKey::from_ec_components(
            "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
        )
        .unwrap();
        assert!(new_verifier(&Algorithm::RS256, &ec).is_err());
        assert!(new_verifier(&Algorithm::ES256, &ec).is_ok());
    }

    /// Whatever provider jsonwebtoken settled on in this process, `verify`
    /// applies ring's rules: the 2048-bit floor among them.
    #[test]
    fn verify_is_ring_whatever_provider_is_in_force() {
        let (input, signature) = signed(Algorithm::RS256);
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));
        for key in keys() {
            assert_eq!(verify(&token, Algorithm::RS256, &key), Some(true));
            assert_eq!(verify(&token, Algorithm::RS512, &key), Some(false));
        }
        let short = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("RSA key");
        let der = short.to_pkcs1_der().unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &serde_json::json!({"sub": "s"}),
            &EncodingKey::from_rsa_der(der.as_bytes()),
        )
        .unwrap();
        let public = short.to_public_key();
        let key = DecodingKey::from_rsa_raw_components(
            &public.n().to_bytes_be(),
            &public.e().to_bytes_be(),
        );
        assert_eq!(verify(&token, Algorithm::RS256, &key), Some(false));
        assert_eq!(verify("no dot", Algorithm::RS256, &key), None);
        assert_eq!(verify("a.b.!!", Algorithm::RS256, &key), None);
        // The answer about the process provider never changes.
        assert_eq!(install(), install());
    }
}
