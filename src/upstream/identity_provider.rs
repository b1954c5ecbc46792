//! What the server needs from the identity provider, as a trait: the real
//! [`Provider`] implements it, and tests put an in-process identity
//! provider in its place to exercise `/token` and `/callback` without
//! discovering one over the network.

use std::sync::Arc;

use ::http::Response;
use ::http::header::HeaderValue;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use jsonwebtoken::jwk::JwkSet;

use super::{Provider, ProviderMetadata, Revocation, TokenResponse, UpstreamError};

/// The identity provider as the server's handlers use it. Object safe, so
/// the server holds an `Arc<dyn IdentityProvider>`.
pub trait IdentityProvider: Send + Sync + std::fmt::Debug {
    /// The provider's metadata in force.
    fn metadata(&self) -> Arc<ProviderMetadata>;

    /// Reads the provider's metadata again (readiness, key rotation).
    fn refresh_metadata(&self) -> BoxFuture<'_, Result<(), UpstreamError>>;

    /// The provider's client_id of a pre-registered client, by name: the
    /// audience of the id_tokens issued to it.
    fn client_id_of(&self, upstream_client: &str) -> Option<&str>;

    /// A grant made as the named pre-registered client (code exchange or
    /// refresh): its answer, or its OAuth error with the status.
    fn token<'a>(
        &'a self,
        upstream_client: &'a str,
        params: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<TokenResponse, UpstreamError>>;

    /// A grant made as a relayed pre-registered client with the credentials
    /// it presented: its Basic `authorization` header, or its
    /// `client_secret`, or neither (a public client).
    fn relayed_token<'a>(
        &'a self,
        client_id: &'a str,
        params: &'a [(&'a str, &'a str)],
        authorization: Option<HeaderValue>,
        client_secret: Option<&'a str>,
    ) -> BoxFuture<'a, Result<TokenResponse, UpstreamError>>;

    /// Revokes a token at the provider's RFC 7009 endpoint as the named
    /// pre-registered client; [`Revocation::NoEndpoint`] when it has none.
    fn revoke<'a>(
        &'a self,
        upstream_client: &'a str,
        token: &'a str,
        token_type_hint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Revocation, UpstreamError>>;

    /// A pre-registered client's own token request, passed through verbatim.
    fn forward_token_request(
        &self,
        body: Bytes,
        authorization: Option<HeaderValue>,
    ) -> BoxFuture<'_, Result<Response<Bytes>, UpstreamError>>;

    /// The provider's signing keys, for its id_tokens; `refresh` asks for a
    /// fresh copy (an unknown `kid`), which the provider may rate-limit.
    fn jwks(&self, refresh: bool) -> BoxFuture<'_, Result<JwkSet, UpstreamError>>;
}

impl IdentityProvider for Provider {
    fn metadata(&self) -> Arc<ProviderMetadata> {
        Provider::metadata(self)
    }

    fn refresh_metadata(&self) -> BoxFuture<'_, Result<(), UpstreamError>> {
        Box::pin(Provider::refresh_metadata(self))
    }

    fn client_id_of(&self, upstream_client: &str) -> Option<&str> {
        Provider::client_id_of(self, upstream_client)
    }

    fn token<'a>(
        &'a self,
        upstream_client: &'a str,
        params: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<TokenResponse, UpstreamError>> {
        Box::pin(Provider::token(self, upstream_client, params))
    }

    fn relayed_token<'a>(
        &'a self,
        client_id: &'a str,
        params: &'a [(&'a str, &'a str)],
        authorization: Option<HeaderValue>,
        client_secret: Option<&'a str>,
    ) -> BoxFuture<'a, Result<TokenResponse, UpstreamError>> {
        Box::pin(Provider::relayed_token(
            self,
            client_id,
            params,
            authorization,
            client_secret,
        ))
    }

    fn revoke<'a>(
        &'a self,
        upstream_client: &'a str,
        token: &'a str,
        token_type_hint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Revocation, UpstreamError>> {
        Box::pin(Provider::revoke(
            self,
            upstream_client,
            token,
            token_type_hint,
        ))
    }

    fn forward_token_request(
        &self,
        body: Bytes,
        authorization: Option<HeaderValue>,
    ) -> BoxFuture<'_, Result<Response<Bytes>, UpstreamError>> {
        Box::pin(Provider::forward_token_request(self, body, authorization))
    }

    fn jwks(&self, refresh: bool) -> BoxFuture<'_, Result<JwkSet, UpstreamError>> {
        Box::pin(Provider::jwks(self, refresh))
    }
}
