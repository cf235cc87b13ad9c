"""'Public' as AWS defines it (S3 user guide, "The meaning of public"): one module, used by the upload
refusal and by rcyc doctor --security. A wildcard grant is private only when a condition pins it to fixed
values of the keys AWS lists; any other condition leaves it open to anyone."""

import json

import boto3
import pytest

from rcyc_cli.cloud import buckets, public

BUCKET = "rcyc-public"


def allow_anyone(condition=None, principal="*", **extra):
    statement = {"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    if condition is not None:
        statement["Condition"] = condition
    statement.update(extra)
    return {"Version": "2012-10-17", "Statement": [statement]}


def is_public(policy) -> bool:
    return bool(public.policy_reasons(policy))


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::111122223333:root", "*"]},
                                       {"AWS": "arn:aws:iam::*:root"}, {"CanonicalUser": "*"}])
def test_an_unconditional_grant_to_a_wildcard_principal_is_public(principal):
    assert is_public(allow_anyone(principal=principal))


def test_a_grant_to_a_fixed_principal_or_a_deny_is_not_public():
    assert not is_public(allow_anyone(principal={"AWS": "arn:aws:iam::111122223333:role/reader"}))
    assert not is_public(allow_anyone(principal={"Service": "lambda.amazonaws.com"}))
    assert not is_public({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
                                         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    assert not is_public(buckets.tls_only_policy(BUCKET))


def test_not_principal_with_allow_is_public():
    policy = allow_anyone()
    statement = policy["Statement"][0]
    del statement["Principal"]
    statement["NotPrincipal"] = {"AWS": "arn:aws:iam::111122223333:root"}
    assert is_public(policy)


@pytest.mark.parametrize("condition", [
    {"Bool": {"aws:SecureTransport": "true"}},  # the case the old check missed: TLS is not a caller
    {"StringEquals": {"s3:ExistingObjectTag/public": "yes"}},
    {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
    {"StringLike": {"aws:UserAgent": "*"}},
    {"Null": {"aws:SourceVpce": "false"}},
])
def test_conditions_that_do_not_pin_the_caller_leave_it_public(condition):
    assert is_public(allow_anyone(condition))


# One case per condition-key family AWS lists: a fixed value pins; a wildcard value, a negated operator or an
# ...IfExists operator does not.
PINNING = {
    "source ARN": ("ArnEquals", "aws:SourceArn", "arn:aws:cloudfront::111122223333:distribution/EDFDVBD6EXAMPLE"),
    "source ARN (ArnLike, fixed)": ("ArnLike", "aws:SourceArn", "arn:aws:s3:::other-bucket"),
    "source VPC": ("StringEquals", "aws:SourceVpc", "vpc-1a2b3c4d"),
    "source VPC endpoint": ("StringEquals", "aws:SourceVpce", "vpce-1a2b3c4d"),
    "source account": ("StringEquals", "aws:SourceAccount", "111122223333"),
    "source owner": ("StringEquals", "aws:SourceOwner", "111122223333"),
    "principal organisation": ("StringEquals", "aws:PrincipalOrgID", "o-a1b2c3d4e5"),
    "principal account": ("StringEquals", "aws:PrincipalAccount", "111122223333"),
    "principal ARN": ("ArnEquals", "aws:PrincipalArn", "arn:aws:iam::111122223333:role/reader"),
    "user id": ("StringEquals", "aws:userid", "AIDAEXAMPLEUSERID"),
    "access point ARN": ("StringEquals", "s3:DataAccessPointArn", "arn:aws:s3:us-east-1:111122223333:accesspoint/ap"),
    "access point account": ("StringEquals", "s3:DataAccessPointAccount", "111122223333"),
    "KMS key": ("StringEquals", "s3:x-amz-server-side-encryption-aws-kms-key-id",
                "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
}


@pytest.mark.parametrize("family", sorted(PINNING))
def test_a_fixed_value_of_a_pinning_key_makes_the_grant_non_public(family):
    operator, key, value = PINNING[family]
    assert not is_public(allow_anyone({operator: {key: value}}))
    assert not is_public(allow_anyone({operator: {key: [value, value]}}))
    assert not is_public(allow_anyone({operator: {key.upper(): value}}))  # keys are case-insensitive
    # Together with a condition that does not pin: the statement's conditions all hold, so still pinned.
    assert not is_public(allow_anyone({operator: {key: value}, "Bool": {"aws:SecureTransport": "true"}}))


@pytest.mark.parametrize("family", sorted(PINNING))
def test_a_wildcard_negated_or_if_exists_condition_on_a_pinning_key_stays_public(family):
    operator, key, value = PINNING[family]
    assert is_public(allow_anyone({operator.replace("Equals", "Like"): {key: "*"}}))
    assert is_public(allow_anyone({operator: {key: [value, value[:-3] + "*"]}}))  # one wildcard value opens it
    assert is_public(allow_anyone({"StringNotEquals": {key: value}}))
    assert is_public(allow_anyone({operator + "IfExists": {key: value}}))
    assert is_public(allow_anyone({"ForAllValues:" + operator: {key: value}}))


@pytest.mark.parametrize("cidr, pinned", [
    ("203.0.113.0/24", True), ("203.0.113.7/32", True), ("203.0.113.7", True), ("10.0.0.0/9", True),
    ("10.0.0.0/8", False), ("0.0.0.0/0", False), ("2001:db8::/48", True), ("2001:db8::/32", False), ("::/0", False),
    ("not-an-address", False),
])
def test_source_ip_pins_only_ranges_narrower_than_aws_limits(cidr, pinned):
    assert is_public(allow_anyone({"IpAddress": {"aws:SourceIp": cidr}})) is not pinned
    assert is_public(allow_anyone({"IpAddress": {"aws:SourceIp": ["198.51.100.0/24", cidr]}})) is not pinned
    assert is_public(allow_anyone({"NotIpAddress": {"aws:SourceIp": cidr}}))


@pytest.mark.parametrize("group", ["AllUsers", "AuthenticatedUsers"])
def test_acl_grants_to_everyone_or_every_aws_account_are_public(group):
    acl = {"Grants": [{"Grantee": {"Type": "Group", "URI": f"http://acs.amazonaws.com/groups/global/{group}"}, "Permission": "READ"}]}
    assert public.acl_reasons(acl) == [f"its ACL grants READ to {group}"]
    assert public.reasons({}, acl, None) and not public.reasons({"IgnorePublicAcls": True}, acl, None)
    owner_only = {"Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": "abc"}, "Permission": "FULL_CONTROL"}]}
    assert public.acl_reasons(owner_only) == []


def test_restrict_public_buckets_neutralises_a_public_policy():
    policy = json.dumps(allow_anyone({"Bool": {"aws:SecureTransport": "true"}}))
    assert public.reasons({}, None, policy)
    assert public.reasons({"RestrictPublicBuckets": True}, None, policy) == []


@pytest.mark.parametrize("how", ["AllUsers", "AuthenticatedUsers", "secure-transport-only", "source-ip-wide"])
def test_the_bucket_reader_refusal_and_audit_share_the_definition(moto_in_process, how):
    """One definition: buckets.public_reasons (the upload refusal) reads the bucket and asks ``public``."""
    from rcyc_core.errors import AwsError

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    if how in ("AllUsers", "AuthenticatedUsers"):
        s3.put_bucket_acl(Bucket=BUCKET, ACL="public-read" if how == "AllUsers" else "authenticated-read")
    else:
        condition = ({"Bool": {"aws:SecureTransport": "true"}} if how == "secure-transport-only"
                     else {"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}})
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(allow_anyone(condition)))
    assert buckets.public_reasons(s3, BUCKET)
    with pytest.raises(AwsError, match="is public"):
        buckets.refuse_if_public(s3, BUCKET)
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=dict(buckets.BLOCK_ALL))
    assert buckets.public_reasons(s3, BUCKET) == []
