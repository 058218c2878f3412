//! Request codes, response codes and the remark texts the Java NameServer sends.

/// Request codes the NameServer answers (`namesrv-commands.md` §A).
pub mod request {
    pub const PUT_KV_CONFIG: i32 = 100;
    pub const GET_KV_CONFIG: i32 = 101;
    pub const DELETE_KV_CONFIG: i32 = 102;
    pub const REGISTER_BROKER: i32 = 103;
    pub const UNREGISTER_BROKER: i32 = 104;
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
    pub const WIPE_WRITE_PERM_OF_BROKER: i32 = 205;
    pub const GET_ALL_TOPIC_LIST_FROM_NAMESERVER: i32 = 206;
    pub const DELETE_TOPIC_IN_NAMESRV: i32 = 216;
    pub const REGISTER_TOPIC_IN_NAMESRV: i32 = 217;
    pub const GET_KVLIST_BY_NAMESPACE: i32 = 219;
    pub const GET_TOPICS_BY_CLUSTER: i32 = 224;
    pub const GET_SYSTEM_TOPIC_LIST_FROM_NS: i32 = 304;
    pub const GET_UNIT_TOPIC_LIST: i32 = 311;
    pub const GET_HAS_UNIT_SUB_TOPIC_LIST: i32 = 312;
    pub const GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST: i32 = 313;
    pub const UPDATE_NAMESRV_CONFIG: i32 = 318;
    pub const GET_NAMESRV_CONFIG: i32 = 319;
    pub const QUERY_DATA_VERSION: i32 = 322;
    pub const ADD_WRITE_PERM_OF_BROKER: i32 = 327;
    pub const GET_BROKER_MEMBER_GROUP: i32 = 901;
    pub const BROKER_HEARTBEAT: i32 = 904;
}

/// Response codes (`remoting-protocol.md` §11).
pub mod response {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const SYSTEM_BUSY: i32 = 2;
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    pub const NO_PERMISSION: i32 = 16;
    pub const TOPIC_NOT_EXIST: i32 = 17;
    pub const QUERY_NOT_FOUND: i32 = 22;
}

/// Remark of a SYSTEM_BUSY reply when the writer queue is full (DECISIONS 7).
pub const REMARK_OVERLOAD: &str = "[OVERLOAD]system busy, start flow control for a while";
pub const REMARK_CRC_MISMATCH: &str = "crc32 not match";
pub const REMARK_REGISTER_FAILED: &str = "register broker failed";
pub const REMARK_NOT_READY: &str = "name server not ready";
pub const REMARK_BLACK_LIST: &str = "Can not update config in black list.";

/// The TOPIC_NOT_EXIST remark of 5.1.0+ (`namesrv-commands.md` §A.6 step 2).
pub fn remark_topic_not_exist(topic: Option<&str>) -> String {
    format!(
        "No topic route info in name server for the topic: {}\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.",
        topic.unwrap_or("null")
    )
}

/// The REQUEST_CODE_NOT_SUPPORTED remark; the leading space is Java's.
pub fn remark_not_supported(code: i32) -> String {
    format!(" request type {code} not supported")
}

/// `MQVersion.Version` ordinals that change behaviour (`remoting-protocol.md` §8).
pub mod version {
    /// Brokers at or above this send a `RegisterBrokerBody`.
    pub const V3_0_11: i32 = 37;
    /// Clients at or above this get the standard-JSON route body.
    pub const V4_9_4: i32 = 401;
    /// Compressed register bodies carry static-topic mappings from here on.
    pub const V5_0_0: i32 = 413;
    /// The version rocketns reports in its replies (5.3.3).
    pub const SERVER: i32 = 479;
}
