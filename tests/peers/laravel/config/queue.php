<?php
// block_for: an idle worker waits in BLPOP queues:<q>:notify (a blocked
// connection in CLIENT LIST: an idle pod). retry_after above --timeout.
return [
    'default' => 'redis',
    'connections' => [
        'redis' => [
            'driver' => 'redis',
            'connection' => 'default',
            'queue' => env('QUEUE_NAME', 'default'),
            'retry_after' => 90,
            'block_for' => (int) env('QUEUE_BLOCK_FOR', 2),
        ],
    ],
    // Failed jobs leave Redis for the failed-job store (a database table in
    // an app); the peer has no database, so the `null` store drops them.
    'failed' => ['driver' => 'null'],
];
