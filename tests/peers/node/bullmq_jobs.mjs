// A real BullMQ worker, and a producer, for the busy and local-mode tests.
//   node bullmq_jobs.mjs worker REDIS_URL QUEUE MARKER_DIR [NAME] [CONCURRENCY]
//     processes jobs {name, seconds}: writes MARKER_DIR/<name>.start, sleeps, writes .done;
//     named `NAME` (the pod name) unless NAME is ""; "-" takes it from $HOSTNAME, as
//     `name: process.env.HOSTNAME` does in a pod.
//     BullMQ installs no signal handler: on SIGTERM this calls worker.close(), which
//     waits for the running jobs, then exits 0.
//   node bullmq_jobs.mjs add REDIS_URL QUEUE NAME:SECONDS...
import { appendFileSync } from "node:fs";
import { Queue, Worker } from "bullmq";

const [mode, url, queueName, ...rest] = process.argv.slice(2);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0) };

if (mode === "add") {
  const queue = new Queue(queueName, { connection });
  for (const spec of rest) {
    const [name, seconds] = spec.split(":");
    await queue.add("sleep", { name, seconds: Number(seconds) }, { removeOnComplete: true });
  }
  await queue.close();
} else {
  const [markers, name = "", concurrency = "1"] = rest;
  const mark = (job, what) =>
    appendFileSync(`${markers}/${job.data.name}.${what}`, `${process.pid} ${Date.now() / 1000}\n`);
  const opts = { connection, concurrency: Number(concurrency) };
  const workerName = name === "-" ? process.env.HOSTNAME : name;
  if (workerName) opts.name = workerName;
  const worker = new Worker(queueName, async (job) => {
    mark(job, "start");
    await new Promise((r) => setTimeout(r, job.data.seconds * 1000));
    mark(job, "done");
  }, opts);
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
