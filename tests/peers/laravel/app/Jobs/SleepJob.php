<?php

namespace App\Jobs;

use Illuminate\Bus\Queueable;
use Illuminate\Contracts\Queue\ShouldQueue;
use Illuminate\Foundation\Bus\Dispatchable;
use Illuminate\Queue\InteractsWithQueue;

/** Sleeps `seconds`, logging its own start and finish to `<marks>/<name>.start|.done`
 *  ("<pid> <epoch>" per run), or throws after its start when `fail` is set. */
class SleepJob implements ShouldQueue
{
    use Dispatchable, InteractsWithQueue, Queueable;

    public function __construct(
        public string $marks,
        public string $name,
        public float $seconds,
        public bool $fail = false,
    ) {
    }

    public function handle(): void
    {
        $this->mark('start');
        if ($this->fail) {
            throw new \RuntimeException("job {$this->name} fails on purpose");
        }
        // PHP's sleep() returns early when a signal (the SIGTERM of a stop)
        // arrives: sleep until the deadline, whatever interrupts.
        $until = microtime(true) + $this->seconds;
        while (($left = $until - microtime(true)) > 0) {
            usleep((int) min($left * 1e6, 100000));
        }
        $this->mark('done');
    }

    private function mark(string $what): void
    {
        $line = getmypid().' '.sprintf('%.3f', microtime(true))."\n";
        file_put_contents("{$this->marks}/{$this->name}.{$what}", $line, FILE_APPEND | LOCK_EX);
    }
}
