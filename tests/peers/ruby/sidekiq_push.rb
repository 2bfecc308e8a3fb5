# Push jobs with Sidekiq's own client: ruby sidekiq_push.rb '<JSON list of job hashes>'.
# A job hash may carry "in": seconds from now, turned into Sidekiq's "at".
require "json"
require "sidekiq"

JSON.parse(ARGV.fetch(0)).each do |item|
  item["at"] = Time.now.to_f + item.delete("in") if item.key?("in")
  Sidekiq::Client.push(item)
end
