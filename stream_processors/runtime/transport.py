"""faust's Kafka transport, reading only committed data.

Every stage writes its outputs in Kafka transactions (`sender.py`), and a worker killed
mid-transaction leaves an aborted one behind, which the restarted worker redoes. A consumer
downstream must therefore skip aborted records: `read_committed`. faust reads so only in its
own `exactly_once` mode, whose transaction manager would run beside our transactional sender
and clash with it; its aiokafka driver otherwise reads `read_uncommitted`, so a stage
downstream of a killed worker counted both the aborted and the redone outputs. This transport
is faust's own with one change: the worker consumer it makes reads committed data.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

READ_COMMITTED = "read_committed"


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads the level when the consumer starts (its fetcher takes it then);
        # tests/unit/runtime/test_transport.py checks every stage's consumer on this version.
        consumer._isolation_level = READ_COMMITTED
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ReadCommittedConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer


class StageApp(faust.App):
    """A faust app whose consumer reads only committed data."""

    def _new_transport(self) -> ReadCommittedTransport:
        return ReadCommittedTransport(self.conf.broker_consumer, self)
