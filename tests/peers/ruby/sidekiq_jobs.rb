# Jobs for a real Sidekiq server in the layout tests: `sidekiq -r ./sidekiq_jobs.rb`.
require "sidekiq"
require "redis"

# Runs until the test pushes to the Redis list named by its argument.
class Block
  include Sidekiq::Worker

  def perform(key)
    Redis.new(url: ENV.fetch("REDIS_URL")).blpop(key, timeout: 60)
  end
end

# Fails, so that Sidekiq's own retry code puts it in the `retry` set.
class Fail
  include Sidekiq::Worker
  sidekiq_options retry: 3

  def perform
    raise "fails on purpose"
  end
end
