"""An independent gRPC client (Python grpcio) for the demo's gRPC contract.

Run by tests/grpc_python.rs, which starts the demo on a fake clock and hands this script the
address and the tokens it needs:

    demo_client.py ADDR VALID EXPIRED FORBIDDEN SHORT_LIVED SHORT_LIVED_EXP

It prints `WATCHING` once the Watch stream of SHORT_LIVED has sent its first tick and reads a
line from stdin (the test moves the demo's clock past the token's expiry meanwhile), then
expects the stream to end with UNAUTHENTICATED / TOKEN_EXPIRED. It prints `OK` at the end and
exits 0; any failed check exits 1 with the reason.

No generated code: the messages are small enough to encode and decode by hand, so nothing here
comes from the crate or from tonic.
"""

import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

DOMAIN = "tower-jwt-guard"


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fields(data):
    """Decodes a protobuf message into {field number: value} (varints and strings only)."""
    out, i = {}, 0
    while i < len(data):
        key, shift = 0, 0
        while True:
            b = data[i]
            i += 1
            key |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            out[number] = value
        elif wire == 2:
            length, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            out[number] = data[i : i + length].decode()
            i += length
        else:
            fail("unexpected wire type %d" % wire)
    return out


def order_request(item, quantity):
    encoded = item.encode()
    return b"\x0a" + varint(len(encoded)) + encoded + b"\x10" + varint(quantity)


def identity(x):
    return x


def method(channel, name, stream=False):
    make = channel.unary_stream if stream else channel.unary_unary
    return make(name, request_serializer=identity, response_deserializer=identity)


def bearer(token):
    return (("authorization", "Bearer " + token),)


def expect_rejection(error, code, reason, retry=False):
    check(error.code() == code, "expected %s, got %s (%s)" % (code, error.code(), error.details()))
    status = rpc_status.from_call(error)
    check(status is not None, "no grpc-status-details-bin for %s" % reason)
    info, retry_info = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry_info = error_details_pb2.RetryInfo()
            detail.Unpack(retry_info)
    check(info is not None, "no ErrorInfo for %s" % reason)
    check(info.reason == reason, "reason %r, expected %r" % (info.reason, reason))
    check(info.domain == DOMAIN, "domain %r" % info.domain)
    if retry:
        check(retry_info is not None, "no RetryInfo for %s" % reason)
        delay = retry_info.retry_delay.seconds + retry_info.retry_delay.nanos / 1e9
        check(delay > 0, "RetryInfo.retry_delay is %r" % delay)


def call_error(fn, *args, **kwargs):
    try:
        fn(*args, timeout=10, **kwargs)
    except grpc.RpcError as error:
        return error
    fail("the call succeeded")


def main():
    addr, valid, expired, forbidden, short_lived, short_lived_exp = sys.argv[1:7]
    # Loopback only: never through a proxy from the environment.
    channel = grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)])
    me = method(channel, "/demo.v1.Demo/Me")
    place_order = method(channel, "/demo.v1.Demo/PlaceOrder")
    watch = method(channel, "/demo.v1.Demo/Watch", stream=True)
    health = method(channel, "/grpc.health.v1.Health/Check")

    # Health answers SERVING (1) without a token.
    reply = fields(health(b"", timeout=10))
    check(reply.get(1) == 1, "health: %r" % reply)

    # A valid token reaches the handler.
    reply = fields(me(b"", metadata=bearer(valid), timeout=10))
    check(reply.get(1) == "alice", "Me: %r" % reply)
    reply = fields(me(b"", metadata=(("authorization", "bEaReR " + valid),), timeout=10))
    check(reply.get(1) == "alice", "Me with a lower-case scheme: %r" % reply)

    # 30 orders per minute: the clock is still, so the 31st is RESOURCE_EXHAUSTED.
    for i in range(30):
        reply = fields(place_order(order_request("book", 1), metadata=bearer(valid), timeout=10))
        check(reply.get(2) == "alice" and reply.get(1), "order %d: %r" % (i, reply))
    error = call_error(place_order, order_request("book", 1), metadata=bearer(valid))
    expect_rejection(error, grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", retry=True)

    # The stream ends with UNAUTHENTICATED / TOKEN_EXPIRED once the token expires.
    ticks = watch(b"", metadata=bearer(short_lived), timeout=30)
    first = fields(next(ticks))
    check(
        first.get(1) == 1 and first.get(2) == int(short_lived_exp),
        "first tick: %r (expected expires_at %s)" % (first, short_lived_exp),
    )
    print("WATCHING", flush=True)
    sys.stdin.readline()
    try:
        for _ in range(100):
            next(ticks)
        fail("the stream did not end")
    except StopIteration:
        fail("the stream ended without a status")
    except grpc.RpcError as error:
        expect_rejection(error, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")

    # Rejections, in an order that ends with the lockout: MISSING (not a failed attempt),
    # FORBIDDEN (not one either), then INVALID and EXPIRED ones until five have failed.
    expect_rejection(call_error(me, b""), grpc.StatusCode.UNAUTHENTICATED, "MISSING_TOKEN")
    expect_rejection(
        call_error(me, b"", metadata=bearer(forbidden)),
        grpc.StatusCode.PERMISSION_DENIED,
        "FORBIDDEN",
    )
    expect_rejection(
        call_error(me, b"", metadata=bearer(expired)), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED"
    )
    for _ in range(4):
        expect_rejection(
            call_error(me, b"", metadata=bearer("not.a.token")),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_TOKEN",
        )
    expect_rejection(
        call_error(me, b"", metadata=bearer(valid)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "LOCKED_OUT",
        retry=True,
    )
    print("OK", flush=True)


if __name__ == "__main__":
    main()
