<?php
// The Redis connection the queue uses, from the environment the test (or
// local mode's manifest) sets. `name` makes phpredis send CLIENT SETNAME with
// the pod's name (POD_NAME): CLIENT LIST then maps the connection to its pod.
// REDIS_CLUSTER (host:port,...) makes it a Redis Cluster (phpredis RedisCluster,
// Laravel's `redis.clusters`); no `name` there: Laravel 8.83 sends it as
// RedisCluster::client('SETNAME', name), which phpredis takes as (node, subcommand)
// and refuses ("Invalid CLIENT subcommand").
$cluster = env('REDIS_CLUSTER');
$redis = [
    'client' => 'phpredis',
    'options' => ['prefix' => env('REDIS_PREFIX', 'laravel_database_')],
];
if ($cluster) {
    $redis['clusters'] = ['default' => array_map(function ($address) {
        [$host, $port] = explode(':', $address);
        return ['host' => $host, 'port' => (int) $port];
    }, explode(',', $cluster))];
} else {
    $redis['default'] = [
        'host' => env('REDIS_HOST', '127.0.0.1'),
        'port' => (int) env('REDIS_PORT', 6379),
        'database' => (int) env('REDIS_DB', 0),
        'password' => env('REDIS_PASSWORD'),
        'name' => env('POD_NAME'),
    ];
}
return [
    'default' => 'sqlite',
    'connections' => ['sqlite' => ['driver' => 'sqlite', 'database' => ':memory:']],
    'redis' => $redis,
];
