#!/usr/bin/env python3
"""The FSGui manual's call-event subscriber, ported to Python 3.

The manual's sample (Python 2) subscribed with ``subscribe(['event*'])`` and then
looked for ``pmessage`` items, which only a pattern subscription delivers; this port
uses ``psubscribe``. It prints ``SUBSCRIBED`` once the subscription stands, then the
data of every message, one per line.

usage: event_subscriber.py HOST PORT
"""
import sys

import redis


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    rc = redis.Redis(host=host, port=port)
    ps = rc.pubsub()
    ps.psubscribe(['event*'])
    for item in ps.listen():
        if item['type'] == 'psubscribe':
            print('SUBSCRIBED', flush=True)
        if item['type'] == 'pmessage':
            print(item['data'].decode('utf-8'), flush=True)


if __name__ == '__main__':
    main()
