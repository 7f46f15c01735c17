//! Lists the adapters wgpu can see, with the limits Kiln's kernels depend on.
//! `cargo run -p kiln-gpu --example adapters`
fn main() {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if adapters.is_empty() {
        println!("no adapter (install a Vulkan driver: apt install mesa-vulkan-drivers libvulkan1)");
    }
    for a in adapters {
        let info = a.get_info();
        let l = a.limits();
        println!("{:?} {:?} '{}' driver '{}' ({})", info.backend, info.device_type, info.name, info.driver, info.driver_info);
        println!(
            "  max_buffer_size {} max_storage_buffer_binding_size {} max_storage_buffers_per_shader_stage {}",
            l.max_buffer_size, l.max_storage_buffer_binding_size, l.max_storage_buffers_per_shader_stage
        );
        println!(
            "  max_compute_workgroup_storage_size {} max_compute_invocations_per_workgroup {} max_compute_workgroup_size_x {} max_compute_workgroups_per_dimension {}",
            l.max_compute_workgroup_storage_size, l.max_compute_invocations_per_workgroup, l.max_compute_workgroup_size_x, l.max_compute_workgroups_per_dimension
        );
        println!("  features {:?}", a.features());
    }
}
