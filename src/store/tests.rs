use std::time::Duration;

use super::*;

#[test]
fn a_family_id_round_trips_through_its_text_and_serde() {
    let id = FamilyId::random().unwrap();
    let text = id.to_string();
    assert_eq!(text.len(), 32);
    assert_eq!(text.parse::<FamilyId>(), Ok(id));
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, format!("\"{text}\""));
    assert_eq!(serde_json::from_str::<FamilyId>(&json).unwrap(), id);
    assert_ne!(FamilyId::random().unwrap(), id);
}

#[test]
fn a_family_id_refuses_anything_but_32_lowercase_hex_digits() {
    for bad in [
        "",
        "00",
        "0123456789abcdef0123456789abcdeF",
        "0123456789abcdef0123456789abcdeg",
        "+123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0",
        "é123456789abcdef0123456789abcde",
    ] {
        assert!(bad.parse::<FamilyId>().is_err(), "{bad:?}");
        assert!(serde_json::from_str::<FamilyId>(&format!("{bad:?}")).is_err());
    }
}

#[test]
fn single_use_kinds_never_share_a_key() {
    let id = b"the same id";
    let jti = single_use_digest(SingleUseKind::Jti, id);
    assert_ne!(jti, single_use_digest(SingleUseKind::Consent, id));
    assert_ne!(jti, single_use_digest(SingleUseKind::State, id));
    assert_eq!(jti, single_use_digest(SingleUseKind::Jti, id));
}

#[tokio::test]
async fn the_memory_store_spends_a_value_once_per_kind() {
    let store = Store::connect(&StoreConfig::default()).unwrap();
    assert_eq!(store.backend(), Backend::Memory);
    let minute = Duration::from_secs(60);
    assert_eq!(
        store.use_once(SingleUseKind::Jti, b"a", minute).await,
        Ok(Use::First)
    );
    assert_eq!(
        store.use_once(SingleUseKind::Jti, b"a", minute).await,
        Ok(Use::Replayed)
    );
    // The same bytes as another kind are another value.
    assert_eq!(
        store.use_once(SingleUseKind::Consent, b"a", minute).await,
        Ok(Use::First)
    );
    assert_eq!(store.ping().await, Ok(()));
}

#[tokio::test]
async fn a_full_memory_store_is_a_counted_error() {
    let store = Store::connect(&StoreConfig {
        max_entries: 1,
        ..StoreConfig::default()
    })
    .unwrap();
    let minute = Duration::from_secs(60);
    let before = METRICS
        .store_errors
        .with_label_values(&["create_family"])
        .get();
    store.create_family(minute).await.unwrap();
    assert_eq!(store.create_family(minute).await, Err(StoreError::Full));
    assert!(
        METRICS
            .store_errors
            .with_label_values(&["create_family"])
            .get()
            > before
    );
}

#[tokio::test]
async fn the_memory_store_rotates_and_detects_reuse() {
    let store = Store::connect(&StoreConfig::default()).unwrap();
    let family = store.create_family(Duration::from_secs(60)).await.unwrap();
    assert_eq!(family.generation, 0);
    assert_eq!(
        store.advance_family(family.id, 0).await,
        Ok(Rotation::Advanced { generation: 1 })
    );
    assert_eq!(
        store.advance_family(family.id, 0).await,
        Ok(Rotation::Reused)
    );
    assert_eq!(
        store.family_status(family.id).await,
        Ok(FamilyStatus::Revoked)
    );
}

#[tokio::test]
async fn a_rewind_takes_back_only_the_advance_it_names() {
    let store = Store::connect(&StoreConfig::default()).unwrap();
    let family = store.create_family(Duration::from_secs(60)).await.unwrap();
    store.advance_family(family.id, 0).await.unwrap();
    // The refresh failed: generation 0 is current again, for the retry.
    assert_eq!(store.rewind_family(family.id, 1, 0).await, Ok(true));
    assert_eq!(
        store.family_status(family.id).await,
        Ok(FamilyStatus::Current(0))
    );
    assert_eq!(
        store.advance_family(family.id, 0).await,
        Ok(Rotation::Advanced { generation: 1 })
    );
    // Advanced again since, or revoked: nothing to take back.
    store.advance_family(family.id, 1).await.unwrap();
    assert_eq!(store.rewind_family(family.id, 1, 0).await, Ok(false));
    store.revoke_family(family.id).await.unwrap();
    assert_eq!(store.rewind_family(family.id, 2, 1).await, Ok(false));
    assert_eq!(
        store.family_status(family.id).await,
        Ok(FamilyStatus::Revoked)
    );
}

#[test]
fn the_operation_labels_are_a_closed_snake_case_set() {
    let labels: Vec<&'static str> = <Operation as strum::VariantArray>::VARIANTS
        .iter()
        .map(|operation| (*operation).into())
        .collect();
    assert_eq!(
        labels,
        [
            "use_once",
            "create_family",
            "advance_family",
            "rewind_family",
            "revoke_family",
            "family_status",
            "ping",
            "record_client",
            "read_clients",
            "add_user",
            "count_users",
            "count"
        ]
    );
}

/// The handlers hold the store in `AppState` and await it inside axum
/// handlers, whose futures must be `Send`.
#[test]
fn the_store_and_its_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let store = Store::connect(&StoreConfig::default()).unwrap();
    send_sync(&store);
    let family = FamilyId::from_bytes([0; 16]);
    let ttl = Duration::from_secs(1);
    send(store.use_once(SingleUseKind::Jti, b"x", ttl));
    send(store.create_family(ttl));
    send(store.advance_family(family, 0));
    send(store.revoke_family(family));
    send(store.family_status(family));
    send(store.ping());
}
