// A real BullMQ worker and producer on a Redis Cluster (an ioredis Cluster connection; the
// prefix carries a hash tag, as BullMQ's docs ask), for tests/redis_topologies.
//   node bullmq_cluster.mjs worker HOST:PORT,... PREFIX QUEUE MARKER_DIR NAME
//     processes jobs {name, seconds}: writes MARKER_DIR/<name>.start, sleeps, writes .done;
//     SIGTERM: worker.close() (waits for the running job), exit 0.
//   node bullmq_cluster.mjs add HOST:PORT,... PREFIX QUEUE NAME:SECONDS...
//     plus one job delayed by an hour.
import { appendFileSync } from "node:fs";
import { Cluster } from "ioredis";
import { Queue, Worker } from "bullmq";

const [mode, nodes, prefix, queueName, ...rest] = process.argv.slice(2);
const startup = nodes.split(",").map((a) => {
  const [host, port] = a.split(":");
  return { host, port: Number(port) };
});
const connect = () => new Cluster(startup, { redisOptions: { maxRetriesPerRequest: null } });

if (mode === "add") {
  const connection = connect();
  const queue = new Queue(queueName, { connection, prefix });
  for (const spec of rest) {
    const [name, seconds] = spec.split(":");
    await queue.add("sleep", { name, seconds: Number(seconds) }, { removeOnComplete: true });
  }
  await queue.add("later", { name: "later", seconds: 0 }, { delay: 3_600_000 });
  await queue.close();
  await connection.quit();
} else {
  const [markers, name] = rest;
  const mark = (job, what) =>
    appendFileSync(`${markers}/${job.data.name}.${what}`, `${process.pid} ${Date.now() / 1000}\n`);
  const worker = new Worker(queueName, async (job) => {
    mark(job, "start");
    await new Promise((r) => setTimeout(r, job.data.seconds * 1000));
    mark(job, "done");
  }, { connection: connect(), prefix, name });
  let closing = false;
  process.on("SIGTERM", async () => {
    if (closing) return;
    closing = true;
    await worker.close();
    process.exit(0);
  });
  await worker.waitUntilReady();
  console.log("ready");
}
