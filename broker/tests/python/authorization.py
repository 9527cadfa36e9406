"""Authorization seen by kafka-python and confluent-kafka, against a Starlog
broker on a plaintext listener (every client is User:ANONYMOUS). Driven by
broker/tests/authorization.rs, which sets the broker up for each mode.

Usage: authorization.py MODE BOOTSTRAP
  enforced            read-only ACLs in force: produce, commit outside the
                      group prefix and admin changes refused, fetch allowed,
                      the topic list filtered (kafka-python)
  confluent-admin     User:ANONYMOUS is a super user: ACLs and SCRAM users
                      created, described and deleted with confluent-kafka
  kafka-python-admin  the same for ACLs with kafka-python
Prints "authorization ok: MODE" and exits 0 on success; raises otherwise.
"""

import sys


def enforced(bootstrap: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions
    from kafka.errors import (
        GroupAuthorizationFailedError,
        TopicAuthorizationFailedError,
    )
    from kafka.structs import OffsetAndMetadata

    lister = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    topics = lister.topics()
    assert topics == {"alerts-ztf", "own"}, f"topic list not filtered: {topics}"
    lister.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0)
    try:
        producer.send("alerts-ztf", key=b"k", value=b"forged").get(timeout=30)
        raise AssertionError("produce to a read-only topic was accepted")
    except TopicAuthorizationFailedError:
        pass
    producer.close()

    reader = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    parts = [TopicPartition("alerts-ztf", 0), TopicPartition("alerts-ztf", 1)]
    reader.assign(parts)
    reader.seek_to_beginning(*parts)
    values = [m.value for m in reader]
    assert values == [b"alert"] * 10, f"fetch: {values}"
    reader.close()

    outsider = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="py-other",
        enable_auto_commit=False,
        request_timeout_ms=30000,
    )
    outsider.assign([parts[0]])
    try:
        outsider.commit({parts[0]: OffsetAndMetadata(3, "", -1)})
        raise AssertionError("commit outside the group prefix was accepted")
    except GroupAuthorizationFailedError:
        pass
    outsider.close()

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.delete_topics(["private"])
        raise AssertionError("delete of a topic without Delete was accepted")
    except TopicAuthorizationFailedError:
        pass
    try:
        admin.create_partitions({"alerts-ztf": NewPartitions(total_count=4)})
        raise AssertionError("create partitions without Alter was accepted")
    except TopicAuthorizationFailedError:
        pass
    # raise_on_unknown would first describe the topic's configs, which is
    # refused too (Read implies neither DescribeConfigs nor AlterConfigs).
    response = admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, "alerts-ztf", configs={"retention.ms": "1000"})],
        raise_on_unknown=False,
        incremental=True,
    )
    outcome = response["topic"]["alerts-ztf"]
    assert "TopicAuthorizationFailed" in outcome, f"alter configs: {response}"
    admin.close()
    print("authorization ok: enforced")


def confluent_admin(bootstrap: str) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    anon = "User:ANONYMOUS"
    wanted = [
        AclBinding(ResourceType.TOPIC, "granted", ResourcePatternType.LITERAL, anon, "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "hidden", ResourcePatternType.LITERAL, anon, "*",
                   AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, anon, "*",
                   AclOperation.DESCRIBE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "fink-", ResourcePatternType.PREFIXED, "User:*", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
    ]
    for binding, future in admin.create_acls(wanted).items():
        future.result(timeout=30)

    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    described = admin.describe_acls(everything).result(timeout=30)
    assert sorted(map(str, described)) == sorted(map(str, wanted)), f"describe: {described}"

    hidden_write = AclBindingFilter(ResourceType.TOPIC, "hidden", ResourcePatternType.MATCH, None,
                                    None, AclOperation.WRITE, AclPermissionType.ANY)
    deleted = admin.delete_acls([hidden_write])[hidden_write].result(timeout=30)
    assert [str(d) for d in deleted] == [str(wanted[1])], f"delete: {deleted}"
    described = admin.describe_acls(everything).result(timeout=30)
    assert len(described) == 3, f"after delete: {described}"

    # SCRAM users: the client sends salt and salted password.
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(
            "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"alice-secret"),
        UserScramCredentialUpsertion(
            "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-secret"),
    ])
    for user, future in futures.items():
        future.result(timeout=30)
    users = admin.describe_user_scram_credentials().result(timeout=30)
    seen = {
        u: [(i.mechanism, i.iterations) for i in d.scram_credential_infos]
        for u, d in users.items()
    }
    assert seen == {
        "alice": [(ScramMechanism.SCRAM_SHA_512, 8192)],
        "bob": [(ScramMechanism.SCRAM_SHA_256, 4096)],
    }, f"describe users: {seen}"

    futures = admin.alter_user_scram_credentials([
        UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256),
    ])
    futures["bob"].result(timeout=30)

    def refused(future, code_name):
        try:
            future.result(timeout=30)
        except KafkaException as e:
            name = e.args[0].name()
            assert name == code_name, f"expected {code_name}, got {name}: {e}"
            return
        raise AssertionError(f"expected {code_name}, got success")

    # Kafka's per-user errors.
    refused(admin.describe_user_scram_credentials(["bob"])["bob"], "RESOURCE_NOT_FOUND")
    refused(
        admin.alter_user_scram_credentials([
            UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_512),
        ])["carol"],
        "RESOURCE_NOT_FOUND",
    )
    refused(
        admin.alter_user_scram_credentials([
            UserScramCredentialUpsertion(
                "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw"),
        ])["dave"],
        "UNACCEPTABLE_CREDENTIAL",
    )
    users = admin.describe_user_scram_credentials().result(timeout=30)
    assert sorted(users) == ["alice"], f"users left: {sorted(users)}"
    print("authorization ok: confluent-admin")


def kafka_python_admin(bootstrap: str) -> None:
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
        ResourceType,
    )

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    keep = ACL(
        principal="User:ANONYMOUS", host="*", operation=ACLOperation.READ,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(ResourceType.GROUP, "py-group",
                                         ACLResourcePatternType.LITERAL),
    )
    drop = ACL(
        principal="User:ANONYMOUS", host="*", operation=ACLOperation.ALTER,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(ResourceType.TOPIC, "tmp",
                                         ACLResourcePatternType.LITERAL),
    )
    result = admin.create_acls([keep, drop])
    assert len(result["succeeded"]) == 2 and not result["failed"], f"create: {result}"

    group_filter = ACLFilter(
        principal=None, host=None, operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.GROUP, "py-group",
                                               ACLResourcePatternType.ANY),
    )
    acls, error = admin.describe_acls(group_filter)
    assert error.errno == 0, f"describe: {error}"
    assert [(a.principal, a.operation, a.resource_pattern.resource_name) for a in acls] == [
        ("User:ANONYMOUS", ACLOperation.READ, "py-group")
    ], f"describe: {acls}"

    tmp_filter = ACLFilter(
        principal="User:ANONYMOUS", host="*", operation=ACLOperation.ALTER,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "tmp",
                                               ACLResourcePatternType.LITERAL),
    )
    results = admin.delete_acls([tmp_filter])
    (_, matched, error), = results
    assert error.errno == 0, f"delete: {results}"
    assert [(m.resource_pattern.resource_name, m.operation) for m in matched] == [
        ("tmp", ACLOperation.ALTER)
    ], f"delete: {results}"
    acls, error = admin.describe_acls(tmp_filter)
    assert acls == [], f"after delete: {acls}"
    admin.close()
    print("authorization ok: kafka-python-admin")


def main() -> None:
    mode, bootstrap = sys.argv[1], sys.argv[2]
    {
        "enforced": enforced,
        "confluent-admin": confluent_admin,
        "kafka-python-admin": kafka_python_admin,
    }[mode](bootstrap)


if __name__ == "__main__":
    main()
