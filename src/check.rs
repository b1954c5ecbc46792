//! `cimd-proxy check`: resolve one client_id exactly as the server would
//! (same fetcher, same address rules, same validator, same policy) and
//! report the verdict.

use std::sync::Arc;

use crate::admission::{Admission, Ask, Refusal};
use crate::cache::{DocumentCache, FetchReport};
use crate::config::Config;
use crate::egress::{self, Egress, EgressSetupError};
use crate::error_code::ErrorCode;
use crate::metadata::ClientMetadata;
use crate::policy::{Action, Decision, Policy};
use crate::trust::{StatementReport, Trust, TrustSetupError};

/// The outcome of checking one client_id; `--json` prints it as is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// The client_id as given.
    pub client_id: String,
    /// Valid and not denied.
    pub ok: bool,
    /// The policy's action, when the document was valid.
    pub decision: Option<Action>,
    /// Why the client was refused, when it was.
    pub error: Option<ReportError>,
    /// The validated document, when it was valid: with a verified software
    /// statement's claims taking precedence, as the server uses it.
    pub metadata: Option<Arc<ClientMetadata>>,
    /// How the document was fetched, when it was.
    pub fetch: Option<FetchReport>,
    /// The policy's full decision (reasons, upstream client, scope ceiling).
    pub policy: Option<Decision>,
    /// The software statement's verdict; null when the document has none
    /// (or could not be read).
    pub statement: Option<StatementReport>,
}

/// A refusal: the stable code and a sentence naming the offending value.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReportError {
    /// The stable error code.
    pub code: ErrorCode,
    /// What was wrong, for a person.
    pub message: String,
}

impl CheckReport {
    /// The report of a client admission refused before the policy: the
    /// one place a [`Refusal`] becomes `check` output.
    fn from_refusal(client_id: &str, refusal: &Refusal) -> Self {
        let statement = match refusal {
            Refusal::Client { error, .. } => error.statement_report(),
            _ => None,
        };
        CheckReport {
            client_id: client_id.to_owned(),
            ok: false,
            decision: None,
            error: Some(ReportError {
                // `check` asks for no redirect_uri, so every refusal it can
                // meet is one of the client itself, which has its code.
                code: refusal.code().unwrap_or(ErrorCode::InvalidMetadata),
                message: refusal.to_string(),
            }),
            metadata: None,
            fetch: None,
            policy: None,
            statement,
        }
    }

    /// One line for a person: the verdict and, on refusal, the code and why.
    pub fn summary(&self) -> String {
        match (&self.error, &self.fetch) {
            (Some(error), _) => format!(
                "refused: {}: {}: {}",
                self.client_id, error.code, error.message
            ),
            (None, Some(fetch)) => format!(
                "ok: {} is valid, decision {}{} (fetched {} bytes from {}, cached for {} s)",
                self.client_id,
                self.decision.map_or("none", Action::as_str),
                self.statement.as_ref().map_or(String::new(), |statement| {
                    match (&statement.issuer, statement.valid) {
                        (Some(issuer), true) => format!(", vouched for by {issuer}"),
                        _ => ", software_statement not checked (no [[trust.issuers]])".to_owned(),
                    }
                }),
                fetch.bytes,
                fetch.connected_to,
                fetch.cache_ttl_s
            ),
            (None, None) => format!("ok: {}", self.client_id),
        }
    }
}

/// Why a check could not even start (a configuration the fetcher or the
/// trust issuers refuse).
#[derive(Debug, thiserror::Error)]
pub enum CheckSetupError {
    /// The fetcher could not be built.
    #[error(transparent)]
    Egress(#[from] EgressSetupError),
    /// A trust issuer's key file could not be used.
    #[error(transparent)]
    Trust(#[from] TrustSetupError),
}

/// Fetches, validates and judges `client_id` under `config`, through the
/// same admission path the server's entrances take.
pub async fn check(config: &Config, client_id: &str) -> Result<CheckReport, CheckSetupError> {
    let egress = Arc::new(Egress::new(&config.fetch, egress::local_addresses())?);
    let cache = DocumentCache::new(Arc::clone(&egress), config.cache.clone());
    let trust = Trust::new(&config.trust, egress)?;
    let policy = Policy::new(config.policy.clone());
    let admission = Admission::new(
        &cache,
        &trust,
        &policy,
        &config.upstream.clients,
        &config.upstream.resource_scopes,
    );
    let (client, decision, error) = match admission.admit(client_id, Ask::default()).await {
        Ok(admitted) => (admitted.client, admitted.decision, None),
        Err(Refusal::Denied(denied)) => {
            let error = ReportError {
                code: ErrorCode::PolicyDenied,
                message: format!("the operator's policy denies {client_id}"),
            };
            (denied.client, denied.decision, Some(error))
        }
        Err(refusal) => return Ok(CheckReport::from_refusal(client_id, &refusal)),
    };
    Ok(CheckReport {
        client_id: client_id.to_owned(),
        ok: error.is_none(),
        decision: Some(decision.action),
        error,
        metadata: Some(Arc::clone(&client.metadata)),
        fetch: client
            .resolved()
            .map(|resolved| resolved.document.fetch.clone()),
        policy: Some(decision),
        statement: client.statement.as_ref().map(|verdict| verdict.report()),
    })
}
