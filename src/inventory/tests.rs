use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::{Store, StoreConfig};

fn memory_store() -> Arc<Store> {
    Arc::new(Store::connect(&StoreConfig::default()).expect("memory store"))
}

fn sighting<'a>(client_id: &'a str, now_ms: u64, max_entries: usize) -> ClientWrite<'a> {
    ClientWrite {
        client_id,
        now_ms,
        sighting: true,
        set: vec![(field::CLIENT_ID, client_id.to_owned())],
        increment: vec![(field::STARTED.to_owned(), 1)],
        max_entries,
    }
}

#[tokio::test]
async fn the_least_recently_seen_client_is_evicted_at_the_bound() {
    let store = memory_store();
    for (n, id) in [
        "https://a.example/c",
        "https://b.example/c",
        "https://c.example/c",
    ]
    .into_iter()
    .enumerate()
    {
        let recorded = store.record_client(&sighting(id, 1000 + n as u64, 3)).await;
        assert_eq!(recorded.unwrap().evicted, 0);
    }
    // a is seen again: b is now the least recently seen.
    store
        .record_client(&sighting("https://a.example/c", 2000, 3))
        .await
        .unwrap();
    let recorded = store
        .record_client(&sighting("https://d.example/c", 3000, 3))
        .await
        .unwrap();
    assert_eq!(recorded.evicted, 1);
    assert_eq!(recorded.entries, 3);
    assert!(store.client("https://b.example/c").await.unwrap().is_none());
    let order: Vec<String> = store
        .clients(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|fields| fields[field::CLIENT_ID].clone())
        .collect();
    assert_eq!(
        order,
        [
            "https://d.example/c",
            "https://a.example/c",
            "https://c.example/c"
        ]
    );
    let a = ClientRecord::from(store.client("https://a.example/c").await.unwrap().unwrap());
    assert_eq!((a.started, a.first_seen, a.last_seen), (2, 1, 2));
}

#[tokio::test]
async fn a_change_that_is_not_a_sighting_neither_creates_nor_moves_an_entry() {
    let store = memory_store();
    let mut write = sighting("https://a.example/c", 5000, 10);
    write.sighting = false;
    store.record_client(&write).await.unwrap();
    assert!(store.client("https://a.example/c").await.unwrap().is_none());
    store
        .record_client(&sighting("https://a.example/c", 1000, 10))
        .await
        .unwrap();
    write.set = vec![(field::ETAG, "\"v2\"".to_owned())];
    write.increment.clear();
    store.record_client(&write).await.unwrap();
    let fields = store.client("https://a.example/c").await.unwrap().unwrap();
    assert_eq!(fields[LAST_SEEN], "1000");
    assert_eq!(fields[field::ETAG], "\"v2\"");
}

#[tokio::test]
async fn users_are_counted_once_each_and_only_for_known_clients() {
    let store = memory_store();
    let inventory = Inventory::new(Arc::clone(&store), InventoryConfig::default());
    let id = "https://a.example/c";
    store
        .add_user(id, &user_digest("https://idp", "alice"))
        .await
        .unwrap();
    assert_eq!(
        store.count_users(id).await.unwrap(),
        0,
        "not in the inventory"
    );
    store.record_client(&sighting(id, 1000, 10)).await.unwrap();
    for sub in ["alice", "bob", "alice", "carol", "bob"] {
        store
            .add_user(id, &user_digest("https://idp", sub))
            .await
            .unwrap();
    }
    assert_eq!(store.count_users(id).await.unwrap(), 3);
    // The same sub at another provider is another person.
    store
        .add_user(id, &user_digest("https://other-idp", "alice"))
        .await
        .unwrap();
    assert_eq!(store.count_users(id).await.unwrap(), 4);
    let warning = NewClientWarning {
        until_users: 5,
        until_days: 7,
    };
    // First seen at 1970 + 1 s: older than 7 days, so not new any more.
    assert_eq!(inventory.newness(id, &warning).await, None);
}

#[tokio::test]
async fn a_client_is_new_until_enough_users_or_days() {
    let store = memory_store();
    let inventory = Inventory::new(Arc::clone(&store), InventoryConfig::default());
    let id = "https://new.example/c";
    let warning = NewClientWarning {
        until_users: 2,
        until_days: 7,
    };
    // Never seen: new, with nobody.
    assert_eq!(
        inventory.newness(id, &warning).await,
        Some(Newness { users: Some(0) })
    );
    store
        .record_client(&sighting(id, now_ms(), 10))
        .await
        .unwrap();
    store
        .add_user(id, &user_digest("i", "alice"))
        .await
        .unwrap();
    assert_eq!(
        inventory.newness(id, &warning).await,
        Some(Newness { users: Some(1) })
    );
    store.add_user(id, &user_digest("i", "bob")).await.unwrap();
    assert_eq!(inventory.newness(id, &warning).await, None);
    // Days: seen 8 days ago, with nobody, is not new either.
    let old = "https://old.example/c";
    let eight_days_ago = now_ms() - Duration::from_secs(8 * 86_400).as_millis() as u64;
    store
        .record_client(&sighting(old, eight_days_ago, 10))
        .await
        .unwrap();
    assert_eq!(inventory.newness(old, &warning).await, None);
}

#[tokio::test]
async fn sightings_land_without_being_awaited_and_bad_ids_are_not_recorded() {
    let inventory = Inventory::new(memory_store(), InventoryConfig { max_entries: 10 });
    inventory.passed_through("proxy-app");
    inventory.passed_through("has space");
    inventory.passed_through(&"x".repeat(MAX_PASS_THROUGH_ID_LEN + 1));
    let record = loop {
        if let Some(record) = inventory.get("proxy-app").await.unwrap() {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(record.kind, "pre_registered");
    assert_eq!(record.last_decision.as_deref(), Some("pass_through"));
    assert_eq!(record.started, 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(inventory.len().await.unwrap(), 1);
}

#[tokio::test]
async fn the_list_filters_by_decision_and_host_glob_and_pages() {
    let store = memory_store();
    let inventory = Inventory::new(Arc::clone(&store), InventoryConfig::default());
    for (n, (id, host, decision)) in [
        ("https://a.example.com/c", "a.example.com", "allow"),
        ("https://b.example.com/c", "b.example.com", "warn"),
        ("https://c.other.org/c", "c.other.org", "allow"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut write = sighting(id, 1000 + n as u64, 10);
        write.set.push((field::HOST, host.to_owned()));
        write.set.push((field::LAST_DECISION, decision.to_owned()));
        store.record_client(&write).await.unwrap();
    }
    let glob = globset::Glob::new("*.example.com")
        .unwrap()
        .compile_matcher();
    let page = inventory
        .list(&ListQuery {
            host: Some(glob),
            page: 1,
            per_page: 1,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.clients.len(), 1);
    assert_eq!(page.clients[0].client_id, "https://b.example.com/c");
    assert!(!page.shared);
    let allowed = inventory
        .list(&ListQuery {
            decision: Some("allow".to_owned()),
            page: 2,
            per_page: 1,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(allowed.total, 2);
    assert_eq!(allowed.clients[0].client_id, "https://a.example.com/c");
    // Unfiltered, the page is read from the store as such.
    let second = inventory
        .list(&ListQuery {
            page: 2,
            per_page: 2,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(second.total, 3);
    let ids: Vec<&str> = second
        .clients
        .iter()
        .map(|c| c.client_id.as_str())
        .collect();
    assert_eq!(ids, ["https://a.example.com/c"]);
}

/// Lets spawned tasks run, without letting (paused) time pass.
async fn let_tasks_run() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn sightings_of_a_client_are_merged_and_written_within_the_interval() {
    let store = memory_store();
    let inventory = Inventory::new(Arc::clone(&store), InventoryConfig::default());
    let started = tokio::time::Instant::now();
    inventory.passed_through("proxy-app");
    inventory.passed_through("proxy-app");
    inventory.completed("proxy-app");
    let_tasks_run().await;
    assert!(
        store.client("proxy-app").await.unwrap().is_none(),
        "a sighting waits for its batch"
    );
    let fields = loop {
        if let Some(fields) = store.client("proxy-app").await.unwrap() {
            break fields;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(started.elapsed() <= BATCH_INTERVAL + Duration::from_millis(10));
    let record = ClientRecord::from(fields);
    assert_eq!((record.started, record.completed), (2, 1));
    assert_eq!(record.client_id, "proxy-app");
    assert_eq!(record.last_decision.as_deref(), Some("pass_through"));
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_written_at_once_and_a_read_writes_what_waits() {
    let store = memory_store();
    let inventory = Inventory::new(
        Arc::clone(&store),
        InventoryConfig {
            max_entries: MAX_WAITING + 1,
        },
    );
    for n in 0..MAX_WAITING {
        inventory.passed_through(&format!("app-{n}"));
    }
    let_tasks_run().await;
    assert_eq!(store.client_count().await.unwrap(), MAX_WAITING as u64);
    // One more waits for its interval, unless this process reads.
    inventory.passed_through("one-more");
    let_tasks_run().await;
    assert!(store.client("one-more").await.unwrap().is_none());
    assert_eq!(inventory.len().await.unwrap(), MAX_WAITING as u64 + 1);
}

#[tokio::test]
async fn sightings_the_store_refuses_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("redis-url");
    // Nothing listens on port 1 of the loopback address.
    std::fs::write(&url, "redis://127.0.0.1:1/").unwrap();
    let store = Store::connect(&StoreConfig {
        backend: crate::store::Backend::Redis,
        url: crate::secret::SecretSource::File(url),
        timeout: Duration::from_millis(100),
        ..StoreConfig::default()
    })
    .unwrap();
    let inventory = Inventory::new(Arc::new(store), InventoryConfig::default());
    let before = batch::sightings_lost();
    inventory.passed_through("app-a");
    inventory.passed_through("app-b");
    inventory.flush().await;
    assert!(
        batch::sightings_lost() >= before + 2,
        "both clients counted as lost"
    );
}

#[test]
fn times_are_said_as_people_say_them() {
    assert_eq!(ago(1000, 0), "never");
    assert_eq!(ago(1000, 995), "just now");
    assert_eq!(ago(1000, 970), "30 s ago");
    assert_eq!(ago(10_000, 10_000 - 300), "5 min ago");
    assert_eq!(ago(100_000, 100_000 - 7_200), "2 h ago");
    assert_eq!(ago(1_000_000, 1_000_000 - 86_400), "1 day ago");
    assert_eq!(ago(1_000_000, 1_000_000 + 3 * 86_400), "in 3 days");
}
