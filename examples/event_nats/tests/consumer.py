"""A real NATS client (the nats-py package) as event_nats's consumer in the tests.

    consumer.py SUBJECT N TIMEOUT_S [STREAM]

Connects to 127.0.0.1:4222 and subscribes to SUBJECT; prints "ready" once the server has the
subscription, then each message's payload as one line (the bytes as received, then "\\n") until
it has N messages or TIMEOUT_S seconds pass, and exits (0 with N messages, 1 with fewer).

With STREAM: creates the JetStream stream STREAM (memory storage) capturing SUBJECT, reads the
messages stored in it through a pull consumer (acking each), and deletes the stream at exit.
"""

import asyncio
import sys

try:
    import nats
    from nats.js.api import StorageType
except ImportError as e:
    sys.stderr.write(f"the nats-py package is missing ({e}): run scripts/test-deps\n")
    sys.exit(2)

SERVER = "nats://127.0.0.1:4222"


def emit(line: bytes) -> None:
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.buffer.flush()


async def main(subject: str, n: int, timeout: float, stream: str | None) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    nc = await nats.connect(SERVER, name="event_nats test (nats-py)", allow_reconnect=False)
    got = 0
    try:
        if stream is None:
            queue: asyncio.Queue = asyncio.Queue()
            await nc.subscribe(subject, cb=queue.put)
            await nc.flush()
            emit(b"ready")
            while got < n:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    msg = await asyncio.wait_for(queue.get(), left)
                except asyncio.TimeoutError:
                    break
                emit(msg.data)
                got += 1
        else:
            js = nc.jetstream()
            await js.add_stream(name=stream, subjects=[subject], storage=StorageType.MEMORY)
            try:
                psub = await js.pull_subscribe(subject, stream=stream)
                emit(b"ready")
                while got < n:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        msgs = await psub.fetch(n - got, timeout=min(left, 1.0))
                    except (asyncio.TimeoutError, nats.errors.TimeoutError):
                        continue
                    for msg in msgs:
                        await msg.ack()
                        emit(msg.data)
                        got += 1
            finally:
                await js.delete_stream(stream)
    finally:
        await nc.close()
    if got < n:
        sys.stderr.write(f"consumer.py: {got} of {n} messages on {subject} within {timeout} s\n")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.stderr.write(__doc__)
        sys.exit(2)
    args = sys.argv[1:]
    sys.exit(asyncio.run(main(args[0], int(args[1]), float(args[2]), args[3] if len(args) > 3 else None)))
