# A job for real Sidekiq workers under `queueworker local`: sleeps, logging its own
# start and finish as lines appended to <dir>/<name>.start and <dir>/<name>.done
# (a job cut by a stop and run again shows two start lines).
require "sidekiq"

class Sleep
  include Sidekiq::Worker
  sidekiq_options retry: 0

  def perform(dir, name, seconds)
    File.open(File.join(dir, "#{name}.start"), "a") { |f| f.puts("#{Process.pid} #{Time.now.to_f}") }
    sleep(seconds)
    File.open(File.join(dir, "#{name}.done"), "a") { |f| f.puts("#{Process.pid} #{Time.now.to_f}") }
  end
end
