//! The route state machine on its own: Java's registry semantics
//! (`namesrv-behaviour.md` §3-§7) and the stale-unregistration fence,
//! driven with explicit `now_ms`.

use rocketns::protocol::body::{DataVersion, RegisterBody, TopicConfig};
use rocketns::route::encode;
use rocketns::route::table::{
    Limits, RegisterOutcome, Registration, RouteSettings, RouteTable, Unregistration,
};

fn reg(addr: &str, id: i64, counter: i64, topics: &[(&str, i32)], conn: u64) -> Registration {
    Registration {
        cluster: "c".into(),
        addr: addr.into(),
        name: "broker-a".into(),
        id,
        ha_addr: Some(format!("{addr}-ha")),
        zone: None,
        timeout_ms: None,
        acting_master: Some(false),
        body: RegisterBody {
            data_version: DataVersion {
                counter,
                ..DataVersion::default()
            },
            topics: topics
                .iter()
                .map(|(n, q)| {
                    let config = TopicConfig {
                        topic_name: Some(n.to_string()),
                        read_queue_nums: *q,
                        write_queue_nums: *q,
                        ..TopicConfig::default()
                    };
                    (n.to_string(), config)
                })
                .collect(),
            filter_servers: Some(vec![]),
            mappings: Default::default(),
        },
        conn,
    }
}

fn unreg(addr: &str, id: i64) -> Unregistration {
    Unregistration {
        cluster: "c".into(),
        addr: addr.into(),
        name: "broker-a".into(),
        id,
    }
}

fn table() -> RouteTable {
    RouteTable::new(Limits::default(), RouteSettings::default())
}

const TOPICS: &[(&str, i32)] = &[("T", 4), ("U", 2)];

fn perm(t: &RouteTable, topic: &str) -> i32 {
    t.topic(topic).unwrap()["broker-a"].perm
}

/// The fence for Java's open bug: an unregistration received before the
/// broker re-registered must not remove the fresh registration.
#[test]
fn stale_unregistration_does_not_remove_a_fresh_registration() {
    let mut t = table();
    t.register(reg("a:1", 0, 1, TOPICS, 1), 1_000);
    // Unregistration stamped at 1_500, broker re-registers at 2_000, the
    // writer applies the unregistration only afterwards.
    t.register(reg("a:1", 0, 2, TOPICS, 2), 2_000);
    assert!(!t.unregister(&unreg("a:1", 0), 1_500));
    assert!(t.topic("T").is_some());
    assert!(t.unregister(&unreg("a:1", 0), 2_500));
    assert!(t.topic("T").is_none());
}

/// DECISIONS 13: a close removes only registrations made on that connection.
#[test]
fn closing_an_old_connection_spares_the_registration_on_the_new_one() {
    let mut t = table();
    t.register(reg("a:1", 0, 1, TOPICS, 1), 1_000);
    t.register(reg("a:1", 0, 1, TOPICS, 2), 2_000);
    assert!(t.closed(1, 3_000).is_empty());
    let gone = t.closed(2, 3_000);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].name, "broker-a");
}

/// Java: "role switch" — a slave re-registering as master with the same
/// address loses its old id (§3 step 5).
#[test]
fn role_switch_removes_the_old_id_of_the_address() {
    let mut t = table();
    t.register(reg("m:1", 0, 1, TOPICS, 1), 0);
    t.register(reg("s:1", 1, 1, TOPICS, 2), 0);
    t.unregister(&unreg("m:1", 0), 10);
    t.register(reg("s:1", 0, 2, TOPICS, 2), 20);
    let addrs: Vec<_> = t.brokers()["broker-a"].addrs.iter().collect();
    assert_eq!(addrs, vec![(&0, &"s:1".to_string())]);
}

/// Java: a registration whose stateVersion is older than the current
/// holder of the id is ignored but answered SUCCESS (§A.4).
#[test]
fn older_state_version_is_superseded() {
    let mut t = table();
    let mut newer = reg("m:1", 0, 1, TOPICS, 1);
    newer.body.data_version.state_version = 5;
    t.register(newer, 0);
    let mut older = reg("m:2", 0, 1, TOPICS, 2);
    older.body.data_version.state_version = 4;
    assert_eq!(t.register(older, 10), RegisterOutcome::Superseded);
    assert_eq!(t.brokers()["broker-a"].addrs[&0], "m:1");
    assert!(t.live("c", "m:2").is_none());
}

/// Java: a wiped write permission survives re-registrations until the
/// broker's data version changes (§8).
#[test]
fn wiped_permission_lasts_until_the_data_version_changes() {
    let mut t = table();
    t.register(reg("m:1", 0, 1, TOPICS, 1), 0);
    assert_eq!(t.wipe_write_perm("broker-a"), 2);
    assert_eq!(perm(&t, "T"), 4);
    t.register(reg("m:1", 0, 1, TOPICS, 1), 10);
    assert_eq!(perm(&t, "T"), 4, "same data version");
    t.register(reg("m:1", 0, 2, TOPICS, 1), 20);
    assert_eq!(perm(&t, "T"), 6, "new data version re-applies");
}

/// Java: only the master (or, in 5.x, the lowest-id slave when no master
/// is registered) changes topic data.
#[test]
fn slaves_change_topics_only_when_no_master_is_registered() {
    let mut t = table();
    t.register(reg("m:1", 0, 1, TOPICS, 1), 0);
    t.register(reg("s:1", 1, 2, &[("T", 8), ("U", 8)], 2), 0);
    assert_eq!(t.topic("T").unwrap()["broker-a"].read_queue_nums, 4);
    t.unregister(&unreg("m:1", 0), 10);
    t.register(reg("s:1", 1, 3, &[("T", 8), ("U", 8)], 2), 20);
    assert_eq!(t.topic("T").unwrap()["broker-a"].read_queue_nums, 8);
}

/// Java: losing the master of an acting-master group clears the write bit
/// of its queues; the route shows the slave and is read-only (§7).
#[test]
fn headless_acting_master_group_loses_write_permission() {
    let mut t = RouteTable::new(
        Limits::default(),
        RouteSettings {
            support_acting_master: true,
            ..Default::default()
        },
    );
    let mut m = reg("m:1", 0, 1, TOPICS, 1);
    m.acting_master = Some(true);
    let mut s = reg("s:1", 1, 1, TOPICS, 2);
    s.acting_master = Some(true);
    t.register(m, 0);
    t.register(s, 0);
    t.unregister(&unreg("m:1", 0), 10);
    assert_eq!(perm(&t, "T"), 4);
    let route = encode::assemble(&t, "T", None).unwrap();
    assert_eq!(
        route.broker_datas[0].broker_addrs[&0], "s:1",
        "acting master shown as id 0"
    );
}

/// Java: expiry after 120 s, or after the broker's own timeout.
#[test]
fn expiry_uses_the_brokers_timeout() {
    let mut t = table();
    let mut short = reg("m:1", 0, 1, TOPICS, 1);
    short.timeout_ms = Some(10_000);
    t.register(short, 0);
    assert!(t.expired(10_000).is_empty());
    let dead = t.expired(10_001);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].addr, "m:1");
}

/// Java: the single-topic guard refuses a first registration of an id
/// carrying exactly one topic, but keeps the group it created (§3 step 7).
#[test]
fn single_topic_first_registration_is_refused() {
    let mut t = table();
    assert_eq!(
        t.register(reg("m:1", 0, 1, &[("T", 4)], 1), 0),
        RegisterOutcome::Refused
    );
    assert!(t.brokers()["broker-a"].addrs.is_empty());
    assert!(t.topic("T").is_none());
}

/// Limits answer with a reason and change nothing.
#[test]
fn topic_limit_refuses_the_whole_registration() {
    let mut t = RouteTable::new(
        Limits {
            broker_groups_max: 10,
            topics_max: 3,
        },
        RouteSettings::default(),
    );
    let four = &[("A", 1), ("B", 1), ("C", 1), ("D", 1)];
    match t.register(reg("m:1", 0, 1, four, 1), 0) {
        RegisterOutcome::LimitReached(why) => assert!(why.contains("topicsMax=3"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.topic_count(), 0);
    assert!(t.brokers().is_empty());
}

/// Java RouteInfoManagerTest: the same address live in two clusters keeps
/// a DataVersion per (cluster, address), and unregistering one leaves the
/// other.
#[test]
fn the_same_address_in_two_clusters_is_two_brokers() {
    let mut t = table();
    t.register(reg("a:1", 0, 10, TOPICS, 1), 0);
    let mut other = reg("a:1", 0, 20, TOPICS, 1);
    other.cluster = "c2".into();
    other.name = "broker-b".into();
    t.register(other, 0);
    assert_eq!(t.live("c", "a:1").unwrap().data_version.counter, 10);
    assert_eq!(t.live("c2", "a:1").unwrap().data_version.counter, 20);
    let mut u = unreg("a:1", 0);
    u.cluster = "c2".into();
    u.name = "broker-b".into();
    t.unregister(&u, 10);
    assert!(t.live("c2", "a:1").is_none());
    assert!(t.live("c", "a:1").is_some());
    assert!(t.brokers().contains_key("broker-a"));
}

/// Java RouteInfoManagerNewTest (order topics, acting master on): a topic
/// registered by a slave only shows the slave as id 0, not writable; the
/// master's registration makes it writable again.
#[test]
fn slave_only_registration_is_read_only_until_the_master_comes() {
    let mut t = RouteTable::new(
        Limits::default(),
        RouteSettings {
            support_acting_master: true,
            ..Default::default()
        },
    );
    let mut s = reg("s:1", 1, 1, TOPICS, 2);
    s.acting_master = Some(true);
    t.register(s, 0);
    assert_eq!(perm(&t, "T"), 4);
    let route = encode::assemble(&t, "T", None).unwrap();
    assert_eq!(
        route.broker_datas[0]
            .broker_addrs
            .get(&0)
            .map(String::as_str),
        Some("s:1")
    );
    let mut m = reg("m:1", 0, 1, TOPICS, 1);
    m.acting_master = Some(true);
    t.register(m, 10);
    assert_eq!(perm(&t, "T"), 6);
    let route = encode::assemble(&t, "T", None).unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
}

/// Java RouteInfoManagerNewTest: master and slave on separate connections;
/// closing the master's leaves only id 1, closing the slave's removes the
/// topic.
#[test]
fn connection_loss_of_master_then_slave() {
    let mut t = table();
    t.register(reg("m:1", 0, 1, TOPICS, 1), 0);
    t.register(reg("s:1", 1, 1, TOPICS, 2), 0);
    for u in t.closed(1, 10) {
        t.unregister(&u, 10);
    }
    let ids: Vec<i64> = t.brokers()["broker-a"].addrs.keys().copied().collect();
    assert_eq!(ids, vec![1]);
    assert!(t.topic("T").is_some());
    for u in t.closed(2, 20) {
        t.unregister(&u, 20);
    }
    assert!(t.topic("T").is_none());
    assert!(t.brokers().is_empty());
}

/// The topic lists are built once per set of listed facts: a snapshot that
/// changes only queues shares them, one that adds a topic does not, and a
/// list built from a snapshot holds what that snapshot lists.
#[test]
fn topic_lists_are_shared_until_what_they_list_changes() {
    use rocketns::route::lists::TopicList;
    use rocketns::route::snapshot::Snapshot;
    let mut t = table();
    t.register(reg("a:1", 0, 1, TOPICS, 1), 0);
    let changes = t.take_changes();
    let first = Snapshot::default().next(&t, &changes, |_| None);
    let all = first.lists.get_or_build(&TopicList::All, &first);
    let text = String::from_utf8(all.to_vec()).unwrap();
    assert!(text.contains("\"T\"") && text.contains("\"U\""), "{text}");
    assert!(first.lists.get(&TopicList::All).is_some());
    // New queue counts for the same topics: routes change, lists do not.
    t.register(reg("a:1", 0, 2, &[("T", 8), ("U", 8)], 1), 1);
    let changes = t.take_changes();
    assert!(changes.topics.contains("T"));
    let second = first.next(&t, &changes, |_| None);
    assert!(std::sync::Arc::ptr_eq(&first.lists, &second.lists));
    // A new topic: the lists start over.
    t.register(reg("a:1", 0, 3, &[("T", 8), ("U", 8), ("V", 8)], 1), 2);
    let changes = t.take_changes();
    let third = second.next(&t, &changes, |_| None);
    assert!(!std::sync::Arc::ptr_eq(&second.lists, &third.lists));
    assert!(third.lists.get(&TopicList::All).is_none());
    let all = third.lists.get_or_build(&TopicList::All, &third);
    assert!(String::from_utf8(all.to_vec()).unwrap().contains("\"V\""));
}
