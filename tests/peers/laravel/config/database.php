<?php
// The Redis connection the queue uses, from the environment the test (or
// local mode's manifest) sets. `name` makes phpredis send CLIENT SETNAME with
// the pod's name (POD_NAME): CLIENT LIST then maps the connection to its pod.
return [
    'default' => 'sqlite',
    'connections' => ['sqlite' => ['driver' => 'sqlite', 'database' => ':memory:']],
    'redis' => [
        'client' => 'phpredis',
        'options' => ['prefix' => env('REDIS_PREFIX', 'laravel_database_')],
        'default' => [
            'host' => env('REDIS_HOST', '127.0.0.1'),
            'port' => (int) env('REDIS_PORT', 6379),
            'database' => (int) env('REDIS_DB', 0),
            'password' => env('REDIS_PASSWORD'),
            'name' => env('POD_NAME'),
        ],
    ],
];
