"""Asks a NameServer for a topic's queues through Apache's RocketMQ C++
client (librocketmq.so from the PyPI package rocketmq-python-cvs).

usage: cpp_queues.py NAMESRV_ADDR TOPIC
Prints one JSON line: the queues sorted by (brokerName, queueId), or
{"error": ...} with exit status 2.
"""
import json
import os
import signal
import sys
import tempfile

# The library writes its logs under $HOME: keep them out of the real one.
os.environ["HOME"] = tempfile.mkdtemp(prefix="rocketns-cpp-")


def fail(message):
    print(json.dumps({"error": message}), flush=True)
    os._exit(2)


def main():
    addr, topic = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGALRM, lambda *_: fail("timed out after 20 s"))
    signal.alarm(20)
    import ctypes
    from rocketmq.client import PullConsumer
    from rocketmq.ffi import dll, _CMessageQueue

    consumer = PullConsumer("rocketns-cpp-probe")
    consumer.set_namesrv_addr(addr)
    consumer.start()
    queues = ctypes.POINTER(_CMessageQueue)()
    size = ctypes.c_int()
    status = dll.FetchSubscriptionMessageQueues(
        consumer._handle, topic.encode(), ctypes.pointer(queues), ctypes.pointer(size)
    )
    if status != 0:
        fail("FetchSubscriptionMessageQueues returned status %d" % status)
    found = [
        {
            "topic": queues[i].topic.decode(),
            "brokerName": queues[i].brokerName.decode(),
            "queueId": queues[i].queueId,
        }
        for i in range(size.value)
    ]
    if size.value:
        dll.ReleaseSubscriptionMessageQueue(queues)
    print(json.dumps(sorted(found, key=lambda q: (q["brokerName"], q["queueId"]))), flush=True)
    consumer.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
