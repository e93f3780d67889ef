"""A girok/1 client written from docs/quic.md with aioquic (PyPI), nobody's code but the doc's.

    python girok1_aioquic.py HOST PORT SHA256 TOKEN ROOM PROTO_DIR

Compiles girok's .proto files (PROTO_DIR, with grpcio-tools), connects with ALPN "girok/1",
checks the server certificate's SHA-256 against SHA256 (pinning), signs in with TOKEN,
subscribes to chat:ROOM, prints "READY", sends a message with a client id and prints
"ACK <seq>", then waits for the next message event of the room from someone else and prints
"GOT <seq> <body>". Exits 0 on success, non-zero with a reason on anything else.
"""

import asyncio
import hashlib
import importlib
import os
import ssl
import subprocess
import sys
import tempfile

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived
from cryptography.hazmat.primitives.serialization import Encoding


def compile_protos(proto_dir):
    out = tempfile.mkdtemp()
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={out}",
         "girok/v1/events.proto", "girok/quic/v1/frames.proto"],
        check=True,
    )
    sys.path.insert(0, out)
    return importlib.import_module("girok.quic.v1.frames_pb2")


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def delimited(message):
    body = message.SerializeToString()
    return varint(len(body)) + body


def cut_frames(buffer):
    """Whole frames at the start of buffer (a bytearray), removed from it."""
    frames = []
    while True:
        length, shift, i = 0, 0, 0
        while i < len(buffer):
            byte = buffer[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        else:
            return frames
        if len(buffer) < i + length:
            return frames
        frames.append(bytes(buffer[i:i + length]))
        del buffer[:i + length]


class Girok1(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.buffers = {}
        self.frames = asyncio.Queue()

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            buffer = self.buffers.setdefault(event.stream_id, bytearray())
            buffer.extend(event.data)
            for frame in cut_frames(buffer):
                self.frames.put_nowait((event.stream_id, frame))
        elif isinstance(event, ConnectionTerminated):
            self.frames.put_nowait((None, event.reason_phrase))


async def main():
    host, port, sha256, token, room, proto_dir = sys.argv[1:7]
    pb = compile_protos(proto_dir)
    config = QuicConfiguration(is_client=True, alpn_protocols=["girok/1"])
    # The certificate is self-signed: pinned by its hash below instead of a CA.
    config.verify_mode = ssl.CERT_NONE
    config.server_name = "localhost"
    async with connect(host, int(port), configuration=config, create_protocol=Girok1) as client:
        peer = client._quic.tls._peer_certificate
        found = hashlib.sha256(peer.public_bytes(Encoding.DER)).hexdigest()
        if found != sha256:
            sys.exit(f"certificate {found} is not the pinned {sha256}")
        control = client._quic.get_next_available_stream_id()

        def send(**fields):
            client._quic.send_stream_data(control, delimited(pb.ClientFrame(**fields)))
            client.transmit()

        async def next_frame():
            stream, raw = await asyncio.wait_for(client.frames.get(), 10)
            if stream is None:
                sys.exit(f"connection closed: {raw}")
            frame = pb.ServerFrame()
            frame.ParseFromString(raw)
            return stream, frame

        send(auth=pb.Auth(token=token))
        stream, frame = await next_frame()
        if frame.WhichOneof("frame") != "welcome":
            sys.exit(f"expected welcome, got {frame}")
        send(subscribe=pb.Subscribe(topic=f"chat:{room}"))
        stream, frame = await next_frame()
        if frame.WhichOneof("frame") != "subscribed" or stream == control:
            sys.exit(f"expected subscribed on a stream of its own, got {frame}")
        events = stream
        print("READY", flush=True)
        send(send=pb.Send(ref="py1", room_id=room, body="hello from aioquic", client_id="py-1"))
        acked = None
        while True:
            stream, frame = await next_frame()
            kind = frame.WhichOneof("frame")
            if stream == control and kind == "ack" and getattr(frame.ack, "ref") == "py1":
                acked = frame.ack.seq
                print(f"ACK {acked}", flush=True)
            elif stream == control and kind == "error":
                sys.exit(f"error frame: {frame.error.code} {frame.error.message}")
            elif stream == events and kind == "event":
                envelope = frame.event.envelope
                if envelope.WhichOneof("payload") != "message_sent":
                    continue
                body = envelope.message_sent.body
                if body == "hello from aioquic":
                    continue
                if acked is None:
                    sys.exit("an event before the ack of our own send")
                print(f"GOT {frame.event.seq} {body}", flush=True)
                return


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
