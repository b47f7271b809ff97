"""Prints one Redis value shaped like what Celery/kombu write, for deploy/check-metrics.sh:

    celery-messages.py message TAG QUEUE            a task message (LPUSH onto the queue list)
    celery-messages.py unacked TAG QUEUE            kombu's `unacked` hash value for it
    celery-messages.py heartbeat HOST ACTIVE PROCESSED
                                                    a worker-heartbeat event (PUBLISH to
                                                    /0.celeryev/worker.heartbeat)
Standard library only.
"""
import base64
import json
import sys
import time


def message(tag, queue):
    body = base64.b64encode(json.dumps([[1], {}, {"callbacks": None}]).encode()).decode()
    return {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": "app.tasks.probe", "id": f"id-{tag}", "eta": None,
                    "expires": None, "retries": 0, "timelimit": [None, None],
                    "root_id": f"id-{tag}", "parent_id": None, "argsrepr": "(1,)",
                    "kwargsrepr": "{}", "origin": "check-metrics@localhost"},
        "properties": {"correlation_id": f"id-{tag}", "reply_to": "check-metrics", "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": queue},
                       "priority": 0, "body_encoding": "base64", "delivery_tag": tag},
    }


def heartbeat(host, active, processed):
    body = {"hostname": host, "utcoffset": 0, "pid": 4242, "clock": 1, "freq": 2.0,
            "active": int(active), "processed": int(processed), "loadavg": [0.1, 0.1, 0.1],
            "sw_ident": "py-celery", "sw_ver": "5.5.0", "sw_sys": "Linux",
            "timestamp": time.time(), "type": "worker-heartbeat"}
    return {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": host},
        "properties": {"delivery_mode": 1, "priority": 0, "body_encoding": "base64",
                       "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"},
                       "delivery_tag": f"hb-{time.time_ns()}"},
    }


if __name__ == "__main__":
    kind, args = sys.argv[1], sys.argv[2:]
    if kind == "message":
        out = message(*args)
    elif kind == "unacked":
        out = [message(*args), "", args[1]]
    elif kind == "heartbeat":
        out = heartbeat(*args)
    else:
        sys.exit(f"unknown kind {kind!r}")
    print(json.dumps(out))
