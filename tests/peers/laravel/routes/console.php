<?php
// `php artisan jobs:dispatch MARKS name:seconds[:delay[:fail]] ...`: one
// process dispatches a whole burst (PHP's start-up is the slow part).
use App\Jobs\SleepJob;
use Illuminate\Support\Facades\Artisan;

Artisan::command('jobs:dispatch {marks} {jobs*}', function (string $marks, array $jobs) {
    foreach ($jobs as $spec) {
        $parts = explode(':', $spec);
        $pending = SleepJob::dispatch($marks, $parts[0], (float) $parts[1],
                                      ($parts[3] ?? '') === 'fail');
        if (($parts[2] ?? '') !== '') {
            $pending->delay((int) $parts[2]);
        }
        unset($pending);  // PendingDispatch pushes the job when destroyed
    }
});
