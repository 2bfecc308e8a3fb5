// Write a BullMQ queue with the real library: waiting, prioritized, delayed and
// active jobs. Usage: node bullmq_fill.mjs REDIS_URL QUEUE WAITING PRIORITIZED DELAYED ACTIVE
import { Queue, Worker } from "bullmq";

const [url, name, waiting, prioritized, delayed, active] = process.argv.slice(2);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0) };
const queue = new Queue(name, { connection });
for (let i = 0; i < Number(waiting); i++) await queue.add("job", { i });
for (let i = 0; i < Number(prioritized); i++) await queue.add("job", { i }, { priority: 5 });
for (let i = 0; i < Number(delayed); i++) await queue.add("job", { i }, { delay: 3_600_000 });
// A worker without a processor only takes jobs when asked: they stay active.
const worker = new Worker(name, null, { connection });
const taken = [];
for (let i = 0; i < Number(active); i++) taken.push((await worker.getNextJob("token-" + i)).id);
console.log(JSON.stringify({ taken }));
await worker.close();
await queue.close();
