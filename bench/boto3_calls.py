"""One client, one operation in a loop: boto3's ecs.list_clusters() against `ecsplay sim serve`.

    /usr/bin/python3 bench/boto3_calls.py URL [CALLS] [ROUNDS]

Prints, for each round, the mean wall-clock and CPU (this process) microseconds per call,
"WALL CPU" a line, like bench/ecsplay_calls.lua. Credentials and region come from the
environment bench/run.sh sets (the simulator's default key pair, us-east-1).
"""
import sys
import time

import boto3


def main():
    url = sys.argv[1]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    client = boto3.client("ecs", endpoint_url=url, region_name="us-east-1")
    first = client.list_clusters()
    if not first.get("clusterArns"):
        sys.exit("bench: list_clusters returned no cluster")
    for _ in range(20):  # warm-up: models loaded, connection open
        client.list_clusters()
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            client.list_clusters()
        wall = (time.perf_counter() - t0) / calls * 1e6
        cpu = (time.process_time() - c0) / calls * 1e6
        print("%.2f %.2f" % (wall, cpu))


if __name__ == "__main__":
    main()
